/**
 * References in pipeline files: `${{ params.lr }}`, `${{ matrix.d_sae }}`, `${{ pipeline.dir }}`,
 * `${{ stages.small.outputs.loss }}`, `${{ stages.small[d_sae=256].outputs.sae }}`, each with an
 * optional path suffix (`[0]`, `.field`). They are parsed by a small tokenizer, never evaluated.
 */
import { formatValue } from './format.js';
import type { Json } from './stage.js';

export type PathSeg = { key: string } | { index: number };

export type Ref =
  | { kind: 'params'; name: string; path: PathSeg[]; text: string }
  | { kind: 'matrix'; name: string; path: PathSeg[]; text: string }
  | { kind: 'pipeline'; name: 'dir' | 'name'; path: PathSeg[]; text: string }
  | {
      kind: 'stage';
      stage: string;
      /** `[key=value,...]`: pick the instance whose matrix values match (compared as formatted text). */
      filter?: Array<[string, string]>;
      output: string;
      path: PathSeg[];
      text: string;
    };

/** A string with references: literal text and references in order. */
export interface Template {
  parts: Array<string | Ref>;
  /** The string is exactly one reference: its value keeps its JSON type. */
  whole: boolean;
}

export class RefSyntaxError extends Error {}

const OPEN = '${{';
const CLOSE = '}}';

/** Parses a string into literal parts and references; null if it holds no reference. */
export function parseTemplate(s: string): Template | null {
  if (!s.includes(OPEN)) return null;
  const parts: Array<string | Ref> = [];
  let i = 0;
  while (i < s.length) {
    const start = s.indexOf(OPEN, i);
    if (start < 0) {
      parts.push(s.slice(i));
      break;
    }
    if (start > i) parts.push(s.slice(i, start));
    const end = s.indexOf(CLOSE, start + OPEN.length);
    if (end < 0) throw new RefSyntaxError(`unterminated reference (missing '}}') in "${s}"`);
    parts.push(parseRef(s.slice(start + OPEN.length, end).trim()));
    i = end + CLOSE.length;
  }
  return { parts, whole: parts.length === 1 && typeof parts[0] !== 'string' };
}

/** Tokens of a reference expression. Filter values are read raw by the parser. */
class Lexer {
  pos = 0;
  constructor(readonly src: string) {}
  fail(what: string): never {
    throw new RefSyntaxError(`bad reference \${{ ${this.src} }}: ${what} at character ${this.pos + 1}`);
  }
  peek(): string | undefined {
    return this.src[this.pos];
  }
  eat(ch: string): boolean {
    if (this.src[this.pos] === ch) {
      this.pos++;
      return true;
    }
    return false;
  }
  expect(ch: string): void {
    if (!this.eat(ch)) this.fail(`expected '${ch}'`);
  }
  ident(): string {
    const m = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(this.src.slice(this.pos));
    if (!m) this.fail('expected a name');
    this.pos += m[0].length;
    return m[0];
  }
  int(): number {
    const m = /^\d+/.exec(this.src.slice(this.pos));
    if (!m) this.fail('expected an index');
    this.pos += m[0].length;
    return Number(m[0]);
  }
  /** Raw text up to ',' or ']' (a filter value: 256, 1e-4, small). */
  raw(): string {
    const m = /^[^,\]]+/.exec(this.src.slice(this.pos));
    if (!m) this.fail('expected a value');
    this.pos += m[0].length;
    return m[0].trim();
  }
  done(): boolean {
    return this.pos >= this.src.length;
  }
}

function parsePath(lx: Lexer): PathSeg[] {
  const path: PathSeg[] = [];
  while (!lx.done()) {
    if (lx.eat('.')) path.push({ key: lx.ident() });
    else if (lx.eat('[')) {
      path.push({ index: lx.int() });
      lx.expect(']');
    } else lx.fail(`unexpected '${lx.peek()}'`);
  }
  return path;
}

export function parseRef(expr: string): Ref {
  const lx = new Lexer(expr);
  const text = `\${{ ${expr} }}`;
  const head = lx.ident();
  if (head === 'params' || head === 'matrix') {
    lx.expect('.');
    const name = lx.ident();
    return { kind: head, name, path: parsePath(lx), text };
  }
  if (head === 'pipeline') {
    lx.expect('.');
    const name = lx.ident();
    if (name !== 'dir' && name !== 'name') lx.fail(`unknown pipeline field '${name}' (known: dir, name)`);
    return { kind: 'pipeline', name: name as 'dir' | 'name', path: parsePath(lx), text };
  }
  if (head === 'stages') {
    lx.expect('.');
    const stage = lx.ident();
    let filter: Array<[string, string]> | undefined;
    if (lx.eat('[')) {
      filter = [];
      do {
        const k = lx.ident();
        lx.expect('=');
        filter.push([k, lx.raw()]);
      } while (lx.eat(','));
      lx.expect(']');
    }
    lx.expect('.');
    const kw = lx.ident();
    if (kw !== 'outputs') lx.fail(`expected 'outputs' after the stage name, got '${kw}'`);
    lx.expect('.');
    const output = lx.ident();
    return { kind: 'stage', stage, filter, output, path: parsePath(lx), text };
  }
  return lx.fail(`unknown reference root '${head}' (known: params, matrix, stages, pipeline)`);
}

/** Applies `[i]` / `.field` segments to a value; throws a message naming the failing step. */
export function applyPath(value: Json, path: PathSeg[], what: string): Json {
  let v: Json = value;
  for (const seg of path) {
    if ('index' in seg) {
      if (!Array.isArray(v)) throw new RefSyntaxError(`${what}: [${seg.index}] applied to a non-list (${describe(v)})`);
      if (seg.index >= v.length)
        throw new RefSyntaxError(`${what}: index ${seg.index} out of range (list of ${v.length})`);
      v = v[seg.index];
    } else {
      if (v === null || typeof v !== 'object' || Array.isArray(v))
        throw new RefSyntaxError(`${what}: .${seg.key} applied to a non-object (${describe(v)})`);
      if (!Object.hasOwn(v, seg.key))
        throw new RefSyntaxError(`${what}: no field '${seg.key}' (has: ${Object.keys(v).join(', ')})`);
      v = (v as Record<string, Json>)[seg.key];
    }
  }
  return v;
}

function describe(v: Json): string {
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Text of a value interpolated inside a longer string. */
export function interpolationText(v: Json): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatValue(v);
  return JSON.stringify(v);
}

/**
 * Renders a template given a resolver for each reference. A whole-string reference keeps its
 * JSON type; references embedded in longer strings are interpolated as text.
 */
export function renderTemplate(t: Template, resolve: (r: Ref) => Json): Json {
  if (t.whole) return resolve(t.parts[0] as Ref);
  return t.parts.map((p) => (typeof p === 'string' ? p : interpolationText(resolve(p)))).join('');
}
