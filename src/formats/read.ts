/**
 * The files and records stages hand to each other are each defined once as a TypeBox schema, in
 * a module per file: fit.ts (fit.json and decision records), metrics.ts (metrics.jsonl), store.ts
 * (store.json). Producers build values of the schema's static type, consumers validate what they
 * read against the schema with `readFormat`, so a malformed file is an error naming the file, the
 * line where there are lines, and the field. A reader refuses a version it does not know.
 *
 * One module per file, not one for all: a stage's cache key covers the modules it imports
 * (src/runtime/code.ts), so an edit to one file's schema re-keys only the stages that write or
 * read that file.
 */
import type { Static, TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';

/**
 * `value` as the schema's type, or an error naming the first field that does not match:
 * `WHERE: points[0]: field "y" must be a number or null (got "high")`.
 */
export function readFormat<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First()!;
  const got = `(got ${JSON.stringify(first.value) ?? 'nothing'})`;
  const parts = first.path.split('/').slice(1);
  if (parts.length === 0) throw new Error(`${where}: expected a JSON object ${got}`);
  const last = parts.pop()!;
  const parent = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('');
  if (/^\d+$/.test(last)) throw new Error(`${where}: ${parent}[${last}] ${expected(first)} ${got}`);
  throw new Error(`${where}: ${parent ? `${parent}: ` : ''}field "${last}" ${expected(first)} ${got}`);
}

/** "must be a number", 'must be "float16" or "float32"'... from the schema that failed. */
function expected(error: ValueError): string {
  const s = error.schema;
  if (error.value === undefined) return 'is missing';
  const literals = (s.anyOf ?? [s]).filter((x: TSchema) => 'const' in x).map((x: TSchema) => JSON.stringify(x.const));
  if (literals.length && literals.length === (s.anyOf ?? [s]).length) return `must be ${literals.join(' or ')}`;
  const types = (s.anyOf ?? [s]).map((x: TSchema) => x.type).filter(Boolean);
  if (types.length && s.minimum === undefined) return `must be ${types.map(article).join(' or ')}`;
  return error.message.replace(/^Expected/, 'must be').toLowerCase();
}

function article(type: string): string {
  return type === 'null' ? 'null' : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}
