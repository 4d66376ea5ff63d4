/**
 * ajv, compiled once per schema and shared, and the translation of ajv errors into
 * positioned, readable messages.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { TObject } from '@sinclair/typebox';
import { PipelineError } from './errors.js';
import { formatValue } from './format.js';
import { pointerOf, type Positions } from './yaml-source.js';
import { didYouMean } from './suggest.js';

let ajv: Ajv | undefined;
const compiled = new WeakMap<object, ValidateFunction>();

function getAjv(): Ajv {
  // Schemas come from TypeBox: validating them against the meta-schema costs a cold start ~70 ms for nothing.
  ajv ??= new Ajv({
    allErrors: true,
    useDefaults: true,
    strict: false,
    verbose: true,
    validateSchema: false,
    code: { optimize: false },
  });
  return ajv;
}

/**
 * Compiles (once) a schema; stage schemas get `additionalProperties: false` at the top level,
 * and every integer is bounded to the safe integers (1e300 is an integer to JSON Schema, and
 * as a row count it would be accepted, then overflow or run forever).
 */
export function validator(schema: object, closeObject = false): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    const closed =
      closeObject && (schema as TObject).additionalProperties === undefined
        ? { ...schema, additionalProperties: false }
        : schema;
    v = getAjv().compile(safeIntegers(closed) as object);
    compiled.set(schema, v);
  }
  return v;
}

function safeIntegers(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(safeIntegers);
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema))
    out[k] = k === 'default' || k === 'enum' || k === 'const' ? v : safeIntegers(v);
  if (out.type === 'integer') {
    out.maximum = Math.min((out.maximum as number | undefined) ?? Infinity, Number.MAX_SAFE_INTEGER);
    out.minimum = Math.max((out.minimum as number | undefined) ?? -Infinity, Number.MIN_SAFE_INTEGER);
  }
  return out;
}

/**
 * Turns ajv errors into one PipelineError per problem, positioned at the YAML node.
 * `base` is the pointer of the validated object inside the document; errors at or below
 * `ignore` pointers (relative to the object) are dropped (fields still holding references).
 */
export function schemaErrors(
  errors: ErrorObject[],
  positions: Positions | undefined,
  base: string,
  context: string,
  ignore: (relPointer: string) => boolean = () => false,
): PipelineError[] {
  // Judge each error by the field it is about (an unknown key's own path, not its parent's).
  const kept = errors.filter((e) => !ignore(describeError(e).pointer));
  // anyOf failures come with one error per branch: report only the anyOf with its description.
  const unions = kept.filter((e) => e.keyword === 'anyOf');
  const underUnion = (e: ErrorObject) =>
    e.keyword !== 'anyOf' &&
    unions.some((u) => e.instancePath === u.instancePath || e.instancePath.startsWith(u.instancePath + '/'));
  const out: PipelineError[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    if (underUnion(e)) continue;
    const { pointer, message, which } = describeError(e);
    const where = [context, pointer ? `field ${fieldName(pointer)}` : ''].filter(Boolean).join(' ');
    const text = where ? `${where}: ${message}` : message;
    if (seen.has(text)) continue;
    seen.add(text);
    out.push(new PipelineError(text, positions?.at(base + pointer, which)));
  }
  return out;
}

function fieldName(pointer: string): string {
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .join('.');
}

function describeError(e: ErrorObject): { pointer: string; message: string; which: 'value' | 'key' } {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'additionalProperties':
      return {
        pointer: `${e.instancePath}${pointerOf([String(p.additionalProperty)])}`,
        message: `unknown key '${p.additionalProperty}'${known(e)}${didYouMean(String(p.additionalProperty), knownKeys(e))}`,
        which: 'key',
      };
    case 'required':
      return { pointer: e.instancePath, message: `missing required field '${p.missingProperty}'`, which: 'value' };
    case 'anyOf':
      return {
        pointer: e.instancePath,
        message: `must be ${(e.parentSchema as { description?: string })?.description ?? 'one of the allowed forms'}, got ${shown(e.data)}`,
        which: 'value',
      };
    case 'enum':
      return {
        pointer: e.instancePath,
        message: `must be one of ${(p.allowedValues as unknown[]).map(formatValue).join(', ')}, got ${shown(e.data)}`,
        which: 'value',
      };
    case 'pattern':
      return {
        pointer: e.instancePath,
        message: `${shown(e.data)} is not ${(e.parentSchema as { description?: string })?.description ?? `matching ${p.pattern}`}`,
        which: 'value',
      };
    case 'type': {
      // YAML's words for JSON's object and array; a key with nothing after it is null.
      const words: Record<string, string> = { object: 'a mapping (key: value lines)', array: 'a list' };
      const want = String(p.type)
        .split(',')
        .map((t) => words[t] ?? t)
        .join(' or ');
      const got = e.data === null ? 'nothing (null)' : shown(e.data);
      return { pointer: e.instancePath, message: `must be ${want}, got ${got}`, which: 'value' };
    }
    case 'propertyNames':
      return { pointer: e.instancePath, message: `bad key name: ${e.message}`, which: 'value' };
    default:
      return { pointer: e.instancePath, message: `${e.message}, got ${shown(e.data)}`, which: 'value' };
  }
}

function knownKeys(e: ErrorObject): string[] {
  return Object.keys((e.parentSchema as { properties?: Record<string, unknown> })?.properties ?? {});
}

function known(e: ErrorObject): string {
  const keys = knownKeys(e);
  return keys.length ? ` (allowed: ${keys.join(', ')})` : '';
}

function shown(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
