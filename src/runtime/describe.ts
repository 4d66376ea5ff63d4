/**
 * Stage type reference, generated from the stage types themselves (their TypeBox params
 * schemas, declared outputs and descriptions): the documentation cannot drift from the code.
 * `pipeline stages` prints it; docs/stages.md is its Markdown output, checked by a test.
 */
import type { TSchema } from '@sinclair/typebox';
import type { StageType } from './stage.js';

interface SchemaLike {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  anyOf?: SchemaLike[];
  items?: SchemaLike;
  properties?: Record<string, SchemaLike>;
  required?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}

/** A short human type: `number > 0`, `"auto" | "wasm"`, `list of number`. */
export function typeText(s: SchemaLike): string {
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' \\| ');
  if (s.anyOf) return [...new Set(s.anyOf.map(typeText))].join(' \\| ');
  if (s.type === 'array') return s.items ? `list of ${typeText(s.items)}` : 'list';
  if (s.type === 'object') {
    const props = Object.keys(s.properties ?? {});
    return props.length ? `{${props.join(', ')}}` : 'object';
  }
  const bounds = [
    s.minimum !== undefined ? `>= ${s.minimum}` : '',
    s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '',
    s.maximum !== undefined ? `<= ${s.maximum}` : '',
    s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '',
  ].filter(Boolean);
  return [Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any'), ...bounds].join(' ');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

export function describeStageType(t: StageType<TSchema & any>): string {
  const schema = t.params as SchemaLike;
  const required = new Set(schema.required ?? []);
  const lines = [`### \`${t.name}\` (version ${t.version}${t.heavy ? ', own process' : ''})`, '', t.description, ''];
  lines.push('| param | type | default | description |', '|---|---|---|---|');
  for (const [name, p] of Object.entries(schema.properties ?? {})) {
    const dflt =
      p.default !== undefined ? `\`${JSON.stringify(p.default)}\`` : required.has(name) ? '**required**' : '';
    lines.push(`| \`${name}\` | ${typeText(p)} | ${cell(dflt)} | ${cell(p.description ?? '')} |`);
  }
  lines.push('', '| output | kind | description |', '|---|---|---|');
  for (const [name, o] of Object.entries(t.outputs)) lines.push(`| \`${name}\` | ${o.kind} | ${cell(o.description)} |`);
  if (t.resources)
    lines.push(
      '',
      `Resources: ${Object.entries(t.resources)
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ')}.`,
    );
  return lines.join('\n') + '\n';
}

export function describeStageTypes(types: StageType<any>[]): string {
  const sorted = [...types].sort((a, b) => a.name.localeCompare(b.name));
  return [
    '# Stage types',
    '',
    "Generated from the stage types' own schemas by `pipeline stages --markdown`; do not edit by hand.",
    '',
    ...sorted.map((t) => `- [\`${t.name}\`](#${t.name}-version-${t.version}${t.heavy ? '-own-process' : ''})`),
    '',
    ...sorted.map(describeStageType),
  ].join('\n');
}
