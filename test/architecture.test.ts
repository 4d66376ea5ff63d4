/**
 * The folder boundaries of src/, checked on every import (static, dynamic and `export from`):
 * - src/runtime knows nothing of SAEs: it imports neither the domain folders, src/formats nor src/stages;
 * - the domain folders (sae, data, fit, report, budget) import neither src/runtime nor src/stages:
 *   what they share with the runtime (atomic write, sha256, progress type) is in src/util;
 * - src/util and src/formats (the files' schemas, which the domain and src/stages share) import no
 *   other folder of src/; src/stages and src/cli.ts may import anything;
 * - no import cycle between folders.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = join(ROOT, 'src');

const DOMAIN = ['sae', 'data', 'fit', 'report', 'budget'];
/** Folder of src/ -> the folders it must not import ('.' is a file directly in src/, such as random.ts). */
const FORBIDDEN: Record<string, string[]> = {
  runtime: [...DOMAIN, 'formats', 'stages', 'cli'],
  util: ['runtime', 'stages', 'cli', 'formats', ...DOMAIN],
  formats: ['runtime', 'util', 'stages', 'cli', '.', ...DOMAIN],
  ...Object.fromEntries(DOMAIN.map((d) => [d, ['runtime', 'stages', 'cli']])),
  stages: ['cli'],
  '.': ['runtime', 'stages', 'cli', 'formats', ...DOMAIN],
};

/**
 * Known violations being removed (none left: the train-sae adapter moved from src/sae to src/stages).
 * A listed import that no longer exists fails the test, so the list only shrinks.
 */
const PENDING = new Set<string>();

interface Edge {
  file: string; // relative to the project root
  specifier: string;
  from: string; // folder of src/
  to: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The folder of src/ a path lies in: 'runtime', 'sae', ...; 'cli' for src/cli.ts, '.' for other files in src/. */
function folderOf(abs: string): string {
  const rel = relative(SRC, abs).split('/');
  if (rel.length > 1) return rel[0];
  return rel[0] === 'cli.ts' ? 'cli' : '.';
}

function importEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const abs of sourceFiles(SRC)) {
    const info = ts.preProcessFile(readFileSync(abs, 'utf8'), true, true);
    for (const imp of info.importedFiles) {
      if (!imp.fileName.startsWith('.')) continue; // node: built-ins and packages
      const target = resolve(dirname(abs), imp.fileName);
      edges.push({ file: relative(ROOT, abs), specifier: imp.fileName, from: folderOf(abs), to: folderOf(target) });
    }
  }
  return edges;
}

test('the import parser sees static, dynamic, type-only and re-exporting imports', () => {
  const text = [
    "import { a } from '../runtime/a.js';",
    "import type { B } from '../sae/b.js';",
    "export { c } from './c.js';",
    "const d = await import('../data/d.js');",
  ].join('\n');
  const seen = ts.preProcessFile(text, true, true).importedFiles.map((f) => f.fileName);
  assert.deepEqual(seen.sort(), ['../data/d.js', '../runtime/a.js', '../sae/b.js', './c.js']);
});

test('no folder of src/ imports a folder it must not', () => {
  const edges = importEdges();
  assert.ok(edges.length > 100, `only ${edges.length} imports found: is the parser broken?`);
  const bad = edges
    .filter((e) => (FORBIDDEN[e.from] ?? []).includes(e.to))
    .map((e) => ({ ...e, line: `${e.file}: import '${e.specifier}'` }));
  const lines = bad.filter((e) => !PENDING.has(e.line)).map((e) => `${e.line} (${e.from} -> ${e.to} is forbidden)`);
  assert.deepEqual(lines, [], `forbidden imports:\n${lines.join('\n')}`);
  const fixed = [...PENDING].filter((p) => !bad.some((e) => e.line === p));
  assert.deepEqual(fixed, [], 'these imports are gone: remove them from PENDING');
});

test('no import cycle between folders of src/', () => {
  const next = new Map<string, Set<string>>();
  const example = new Map<string, Edge>();
  for (const e of importEdges()) {
    if (e.from === e.to || PENDING.has(`${e.file}: import '${e.specifier}'`)) continue;
    if (!next.has(e.from)) next.set(e.from, new Set());
    next.get(e.from)!.add(e.to);
    example.set(`${e.from}>${e.to}`, e);
  }
  // Depth-first search; a back edge closes a cycle, reported with one import per step.
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (folder: string, path: string[]) => {
    state.set(folder, 'open');
    for (const to of next.get(folder) ?? []) {
      if (state.get(to) === 'open') {
        const loop = [...path.slice(path.indexOf(to)), folder, to];
        const steps = loop.slice(1).map((t, i) => {
          const e = example.get(`${loop[i]}>${t}`)!;
          return `${loop[i]} -> ${t} (${e.file}: '${e.specifier}')`;
        });
        cycles.push(steps.join(', '));
      } else if (!state.has(to)) visit(to, [...path, folder]);
    }
    state.set(folder, 'done');
  };
  for (const folder of [...next.keys()].sort()) if (!state.has(folder)) visit(folder, []);
  assert.deepEqual(cycles, [], `import cycles between folders:\n${cycles.join('\n')}`);
});
