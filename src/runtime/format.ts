/**
 * Canonical text forms: numbers in instance names and messages, canonical JSON for keys.
 * Both must be stable across runs and machines, since names and keys are persisted.
 */
import type { Json } from './stage.js';

/**
 * Shortest stable form of a number: integers in plain decimal (4096, 16384), other numbers
 * in whichever of decimal and exponent notation is shorter (1e-4 for 0.0001, 0.25, 7e-5),
 * so that `lr: 0.0001` and `lr: 1e-4` name the same instance.
 */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const plain = String(n);
  const exp = n.toExponential().replace('e+', 'e');
  return exp.length < plain.length ? exp : plain;
}

/** A value as shown in messages and instance names. */
export function formatValue(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** JSON with object keys sorted at every level: equal values give equal text. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== 'object') {
    if (typeof v === 'number' && !Number.isFinite(v)) throw new Error(`cannot hash non-finite number ${v}`);
    return JSON.stringify(v) ?? 'null';
  }
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const obj = v as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** Same JSON value (deep equality through canonical form). */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * Sets an own property, also one named `__proto__` (an assignment with that name would change
 * the object's prototype instead): objects built from user keys are built with this.
 */
export function setOwn(obj: Record<string, Json>, key: string, value: Json): void {
  Object.defineProperty(obj, key, { value, writable: true, enumerable: true, configurable: true });
}

/** `__proto__` as a key anywhere in a value: where, as `a.b`, or undefined. */
export function protoKeyPath(v: unknown, path = ''): string | undefined {
  if (Array.isArray(v)) {
    for (const [i, x] of v.entries()) {
      const hit = protoKeyPath(x, `${path}[${i}]`);
      if (hit !== undefined) return hit;
    }
  } else if (isPlainObject(v)) {
    for (const [k, x] of Object.entries(v)) {
      const here = path ? `${path}.${k}` : k;
      if (k === '__proto__') return here;
      const hit = protoKeyPath(x, here);
      if (hit !== undefined) return hit;
    }
  }
  return undefined;
}

export function isPlainObject(v: unknown): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `b` over `a`, key by key at every depth of nested objects; lists and scalars of `b` replace. */
export function deepMerge(a: Json | undefined, b: Json): Json {
  if (!isPlainObject(a) || !isPlainObject(b)) return b;
  const out: Record<string, Json> = { ...a };
  for (const [k, v] of Object.entries(b)) setOwn(out, k, deepMerge(Object.hasOwn(a, k) ? a[k] : undefined, v));
  return out;
}

/** A file-system-safe form of an instance name, for log files. */
export function safeName(instance: string): string {
  return instance
    .replace(/\[/g, '@')
    .replace(/\]/g, '')
    .replace(/[^A-Za-z0-9._=@,+-]/g, '_');
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}
