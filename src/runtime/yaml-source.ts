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

/**
 * What a pipeline file may be. A real study is a few kB, a dozen levels deep; the limits keep
 * a malformed or hostile file from costing minutes or gigabytes before it is refused.
 */
export const YAML_LIMITS = {
  bytes: 1 << 20,
  depth: 64,
  /** yaml's maxAliasCount: alias expansions allowed (a "billion laughs" file needs millions). */
  aliases: 1000,
} as const;

/** The only tags a file may use: those whose values are JSON (no dates, sets, binary, custom types). */
const JSON_TAGS = new Set(['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((t) => `tag:yaml.org,2002:${t}`));

export function readYamlFile(file: string, shownAs: string): SourceDoc {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    // The system's own text ("ENOENT: no such file or directory, open ...") only for the rare causes.
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new PipelineError(`pipeline file ${shownAs} not found`);
    if (code === 'EISDIR') throw new PipelineError(`pipeline file ${shownAs} is a folder, not a file`);
    throw new PipelineError(`cannot read pipeline file ${shownAs}: ${(e as Error).message}`);
  }
  if (bytes.length > YAML_LIMITS.bytes) {
    throw new PipelineError(
      `file is ${bytes.length} bytes, more than the ${YAML_LIMITS.bytes}-byte limit of a pipeline file`,
      { file: shownAs, line: 1, col: 1 },
    );
  }
  return parseCached(decodeUtf8(bytes, shownAs), shownAs);
}

/** The text of a file that must be UTF-8: invalid bytes are an error at their position, never replaced. */
export function decodeUtf8(bytes: Buffer, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const at = firstInvalidUtf8(bytes);
    const before = bytes.subarray(0, at).toString('utf8');
    const line = before.split('\n').length;
    const col = before.length - before.lastIndexOf('\n');
    const hex = bytes
      .subarray(at, at + 4)
      .toString('hex')
      .replace(/../g, '\\x$&');
    throw new PipelineError(`not UTF-8: invalid byte sequence ${hex} at byte ${at}`, { file, line, col });
  }
}

/** Offset of the first byte that does not start a well-formed UTF-8 sequence. */
function firstInvalidUtf8(b: Buffer): number {
  let i = 0;
  while (i < b.length) {
    const n = utf8SequenceLength(b, i);
    if (n === 0) return i;
    i += n;
  }
  return b.length;
}

/** Length of the well-formed UTF-8 sequence at i (RFC 3629: no overlongs, surrogates or > U+10FFFF), or 0. */
function utf8SequenceLength(b: Buffer, i: number): number {
  const c = b[i];
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k] >= lo && b[i + k] <= hi;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    const [lo, hi] = c === 0xe0 ? [0xa0, 0xbf] : c === 0xed ? [0x80, 0x9f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    const [lo, hi] = c === 0xf0 ? [0x90, 0xbf] : c === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
    return cont(1, lo, hi) && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
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
    const positions = new Map(
      hit.positions.map(([k, v]): [string, NodePos] => [
        k,
        v.key ? { value: relabel(v.value), key: relabel(v.key) } : { value: relabel(v.value) },
      ]),
    );
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
  if (typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype)
    return Object.values(v as object).every(isExactJson);
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

/**
 * What usually causes the parser's errors in a hand-written pipeline. The parser points at
 * where the value it could not end began, often the line above the mistake.
 */
const YAML_HINTS: Partial<Record<string, string>> = {
  BLOCK_AS_IMPLICIT_KEY:
    "is the next line indented deeper than the line above, or a key there missing its ':'? " +
    'keys of one mapping start at the same column',
  MULTILINE_IMPLICIT_KEY:
    "is a key here missing its ':', or the next line indented deeper than the line above? " +
    'keys of one mapping start at the same column',
  BLOCK_IN_FLOW: "inside { } or [ ], quote the value: a ': ' in it starts a mapping",
};

export function parseYamlText(text: string, file: string): SourceDoc {
  const { LineCounter, parseDocument, isMap, isSeq, isScalar, isNode, visit } = yaml();
  const lc = new LineCounter();
  const { masked, refs } = maskRefs(text);
  const doc = parseDocument(masked, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const err = doc.errors[0];
  if (err) {
    const at = lc.linePos(err.pos[0]);
    const hint = YAML_HINTS[err.code] ? ` (${YAML_HINTS[err.code]})` : '';
    throw new PipelineError(`invalid YAML: ${err.message.split('\n')[0]}${hint}`, {
      file,
      line: at.line,
      col: at.col,
    });
  }
  const posOf = (n: Node | null | undefined, fallback: SourcePos): SourcePos => {
    if (!n?.range) return fallback;
    const p = lc.linePos(n.range[0]);
    return { file, line: p.line, col: p.col };
  };
  /** The tag's own position: the last `!` before the node on its line. */
  const tagPos = (n: Node, fallback: SourcePos): SourcePos => {
    const start = n.range?.[0];
    if (start === undefined) return fallback;
    const lineStart = masked.lastIndexOf('\n', start - 1) + 1;
    let bang = masked.lastIndexOf('!', start);
    while (bang > lineStart && masked[bang - 1] === '!') bang--;
    const at = lc.linePos(bang >= lineStart ? bang : start);
    return { file, line: at.line, col: at.col };
  };
  const positions = new Map<string, NodePos>();
  const root: SourcePos = { file, line: 1, col: 1 };
  const checkNode = (node: unknown, depth: number, here: SourcePos) => {
    if (!isNode(node)) return;
    if (depth > YAML_LIMITS.depth)
      throw new PipelineError(`nested more than ${YAML_LIMITS.depth} levels deep`, posOf(node, here));
    if (node.tag && !JSON_TAGS.has(node.tag)) {
      throw new PipelineError(
        `tag ${node.tag.replace('tag:yaml.org,2002:', '!!')} is not allowed (only plain values, lists and mappings)`,
        tagPos(node, here),
      );
    }
  };
  const walk = (node: unknown, ptr: string, here: SourcePos, depth = 0) => {
    checkNode(node, depth, here);
    if (isMap(node)) {
      for (const pair of node.items) {
        const keyNode = pair.key as Node | null;
        const key = isScalar(keyNode) ? String(keyNode.value) : String(keyNode);
        const keyPos = posOf(keyNode, here);
        checkNode(keyNode, depth + 1, here);
        // Assigned to a JavaScript object, this key would set its prototype: never data.
        if (key === '__proto__') throw new PipelineError("key '__proto__' is not allowed", keyPos);
        const child = ptr + pointerOf([key]);
        const valuePos = posOf(pair.value as Node | null, keyPos);
        positions.set(child, { value: valuePos, key: keyPos });
        walk(pair.value, child, valuePos, depth + 1);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        const child = `${ptr}/${i}`;
        const p = posOf(item as Node, here);
        positions.set(child, { value: p });
        walk(item, child, p, depth + 1);
      });
    }
  };
  positions.set('', { value: posOf(doc.contents as Node, root) });
  walk(doc.contents, '', root);
  let js: unknown;
  try {
    js = doc.toJS({ maxAliasCount: YAML_LIMITS.aliases });
  } catch (e) {
    // yaml refuses an alias that expands past maxAliasCount: point at the first alias.
    let alias: Node | undefined;
    visit(doc, {
      Alias: (_key, n) => {
        alias = n;
        return visit.BREAK;
      },
    });
    if (!alias) throw e;
    throw new PipelineError(
      `aliases expand to too many values (more than ${YAML_LIMITS.aliases} alias expansions): ${(e as Error).message}`,
      posOf(alias, root),
    );
  }
  const data = unmask(js, refs);
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
