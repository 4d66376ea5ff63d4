/**
 * Reads a YAML file into plain data plus a map from JSON pointer to source position, so that
 * every later error (schema, reference, cycle) can name file:line:col of the node at fault.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { Node } from 'yaml';

/** The YAML parser, loaded on first use (a cached parse needs none of it). */
let yamlLib: typeof import('yaml') | undefined;
const yaml = () => (yamlLib ??= createRequire(import.meta.url)('yaml') as typeof import('yaml'));
import { PipelineError, type SourcePos } from './errors.js';
import { sha256 } from '../util/hash.js';

export interface NodePos {
  /** Position of the value node. */
  value: SourcePos;
  /** Position of the key, for map entries (where "unknown key" errors point). */
  key?: SourcePos;
}

export interface SourceDoc {
  file: string;
  text: string;
  data: unknown;
  positions: Map<string, NodePos>;
}

export function pointerOf(path: Array<string | number>): string {
  return path.map((p) => '/' + String(p).replace(/~/g, '~0').replace(/\//g, '~1')).join('');
}

export function readYamlFile(file: string, shownAs: string): SourceDoc {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PipelineError(`cannot read pipeline file ${shownAs}: ${(e as Error).message}`);
  }
  return parseCached(text, shownAs);
}

/**
 * Parsing a few hundred stages of YAML costs a cold process more than everything else a
 * run does (loading the parser and parsing scaling.yaml: about 2 s against 0.5 ms for its
 * cached JSON, measured under load); the result (data and positions) is kept in a per-user
 * temporary folder and read back with JSON.parse. Its key is the text's digest and the
 * parser's own code (this module's source and the yaml package's version), so a new parser
 * never reads an old parse. Only a parse that JSON represents exactly is cached (not one
 * holding .inf, .nan, -0 or a date): a warm cache always gives what a fresh parse gives.
 * Invalid files are never cached. `pipeline gc` empties it.
 */
export const PARSE_CACHE = join(tmpdir(), `pipeline-yaml-${process.getuid?.() ?? 'u'}`);
const PARSE_FORMAT = 'yaml-parse/2';

/** Digest of the parser's code, computed once per process. */
let parserCode: string | undefined;
function parserDigest(): string {
  if (parserCode === undefined) {
    const require = createRequire(import.meta.url);
    let yamlVersion = '?';
    try {
      yamlVersion = String(require('yaml/package.json').version);
    } catch {
      /* exports may hide package.json: the module source below still keys the cache */
    }
    parserCode = sha256(`${readFileSync(fileURLToPath(import.meta.url))}\0${yamlVersion}`);
  }
  return parserCode;
}

function parseCached(text: string, file: string): SourceDoc {
  const digest = sha256(`${PARSE_FORMAT}\0${parserDigest()}\0${text}`);
  const path = join(PARSE_CACHE, `${digest}.json`);
  try {
    const hit = JSON.parse(readFileSync(path, 'utf8')) as { data: unknown; positions: Array<[string, NodePos]> };
    const relabel = (p: SourcePos): SourcePos => ({ ...p, file });
    const positions = new Map(hit.positions.map(([k, v]): [string, NodePos] => [k, v.key ? { value: relabel(v.value), key: relabel(v.key) } : { value: relabel(v.value) }]));
    return { file, text, data: hit.data, positions };
  } catch {
    /* not cached yet */
  }
  const doc = parseYamlText(text, file);
  if (!isExactJson(doc.data)) return doc;
  try {
    mkdirSync(PARSE_CACHE, { recursive: true });
    writeFileSync(`${path}.${process.pid}`, JSON.stringify({ data: doc.data, positions: [...doc.positions] }));
    renameSync(`${path}.${process.pid}`, path);
  } catch {
    /* a cache only */
  }
  return doc;
}

/** Whether JSON.parse(JSON.stringify(v)) gives v back exactly. */
function isExactJson(v: unknown): boolean {
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v) && !Object.is(v, -0);
  if (Array.isArray(v)) return v.every(isExactJson);
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) return Object.values(v as object).every(isExactJson);
  return false;
}

/**
 * `${{ ... }}` is not valid YAML everywhere: inside a flow mapping (`with: { lr: ${{ params.lr }} }`)
 * the braces are flow indicators. Before parsing, each single-line reference is replaced by a
 * placeholder of the same length made of plain-scalar characters (so every column stays put),
 * and restored in the parsed strings afterwards.
 */
function maskRefs(text: string): { masked: string; refs: string[] } {
  const refs: string[] = [];
  const masked = text.replace(/\$\{\{[^\n]*?\}\}/g, (m) => {
    const head = `_R${refs.length}`;
    if (m.length < head.length + 2) return m;
    refs.push(m);
    return `${head}${'x'.repeat(m.length - head.length - 2)}R_`;
  });
  return { masked, refs };
}

function unmask(v: unknown, refs: string[]): unknown {
  if (typeof v === 'string') return v.includes('_R') ? v.replace(/_R(\d+)x*R_/g, (m, i) => refs[Number(i)] ?? m) : v;
  if (Array.isArray(v)) return v.map((x) => unmask(x, refs));
  // Plain mappings only: a date (!!timestamp) is a value, not a mapping to rebuild as {}.
  if (v && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [unmask(k, refs) as string, unmask(x, refs)]));
  }
  return v;
}

export function parseYamlText(text: string, file: string): SourceDoc {
  const { LineCounter, parseDocument, isMap, isSeq, isScalar } = yaml();
  const lc = new LineCounter();
  const { masked, refs } = maskRefs(text);
  const doc = parseDocument(masked, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const at = lc.linePos(err.pos[0]);
    throw new PipelineError(`invalid YAML: ${err.message.split('\n')[0]}`, { file, line: at.line, col: at.col });
  }
  const posOf = (n: Node | null | undefined, fallback: SourcePos): SourcePos => {
    if (!n?.range) return fallback;
    const p = lc.linePos(n.range[0]);
    return { file, line: p.line, col: p.col };
  };
  const positions = new Map<string, NodePos>();
  const root: SourcePos = { file, line: 1, col: 1 };
  const walk = (node: unknown, ptr: string, here: SourcePos) => {
    if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const keyPos = posOf(keyNode, here);
        // Assigned to a JavaScript object, this key would set its prototype: never data.
        if (key === '__proto__') throw new PipelineError("key '__proto__' is not allowed", keyPos);
        const child = ptr + pointerOf([key]);
        const valuePos = posOf(pair.value as Node | null, keyPos);
        positions.set(child, { value: valuePos, key: keyPos });
        walk(pair.value, child, valuePos);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const child = `${ptr}/${i}`;
        const p = posOf(item as Node, here);
        positions.set(child, { value: p });
        walk(item, child, p);
      });
    }
  };
  positions.set('', { value: posOf(doc.contents as Node, root) });
  walk(doc.contents, '', root);
  const data = unmask(doc.toJS({ maxAliasCount: 1000 }), refs);
  return { file, text, data: data ?? {}, positions };
}

/**
 * Position lookup over a chain of documents (a pipeline and the files it extends, child first):
 * the nearest node at or above the pointer, preferring exact matches in any document.
 */
export class Positions {
  constructor(readonly docs: SourceDoc[]) {}

  at(pointer: string, which: 'value' | 'key' = 'value'): SourcePos {
    let ptr = pointer;
    for (;;) {
      for (const d of this.docs) {
        const hit = d.positions.get(ptr);
        if (hit) return (which === 'key' && hit.key) || hit.value;
      }
      if (ptr === '') return { file: this.docs[0]?.file ?? '?', line: 1, col: 1 };
      ptr = ptr.slice(0, ptr.lastIndexOf('/'));
      which = 'value';
    }
  }
}
