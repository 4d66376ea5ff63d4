/**
 * The code of a stage type, in its cache key: a digest of the compiled module that defines
 * the type and of every module it imports, transitively (static imports, `import('...')`,
 * `require('...')` and `new URL('...', import.meta.url)` with literal paths). A package from
 * node_modules counts as its name and version, not its files. The runner itself (src/runtime)
 * is not followed: it moves files around and does not compute results. Paths are relative to
 * the program's root, so equal code gives equal keys on every machine and in every run.
 * Not covered: code loaded by computed paths (a native addon's binary) and what a shell
 * command runs; bump the stage's `version` or declare such files as inputs.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { StageType } from './stage.js';

const RUNTIME_DIR = dirname(new URL(import.meta.url).pathname);
/** The program's root: the folder holding src/ (dist/ when compiled). */
const PROGRAM_ROOT = resolve(RUNTIME_DIR, '../..');

const digests = new Map<string, string>();

/** Digest of the stage type's module closure; undefined when its defining file is unknown. */
export function stageCodeDigest(type: StageType<any>): string | undefined {
  if (!type.codeFile) return undefined;
  let digest = digests.get(type.codeFile);
  if (!digest) {
    digest = closureDigest(type.codeFile);
    digests.set(type.codeFile, digest);
  }
  return digest;
}

/** sha256 over the sorted (path, content digest) of every file and (package, version) reached. */
export function closureDigest(entry: string): string {
  const { files, packages } = moduleClosure(entry);
  const lines = [
    ...[...files].map(([f, d]) => `file ${relative(PROGRAM_ROOT, f).split(sep).join('/')} ${d}`),
    ...[...packages].map(([n, v]) => `package ${n} ${v}`),
  ].sort();
  return createHash('sha256').update(lines.join('\n')).digest('hex');
}

/** The files of `entry`'s closure, absolute and sorted: what `closureDigest` covers besides packages. */
export function closureFiles(entry: string): string[] {
  return [...moduleClosure(entry).files.keys()].sort();
}

/** Every file reached from `entry` (absolute path -> content digest) and every package (name -> version). */
function moduleClosure(entry: string): { files: Map<string, string>; packages: Map<string, string> } {
  const files = new Map<string, string>();
  const packages = new Map<string, string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    const text = readFileSync(file);
    files.set(file, createHash('sha256').update(text).digest('hex'));
    for (const spec of importedSpecifiers(text.toString('utf8'))) {
      if (spec.startsWith('.') || spec.startsWith('/')) {
        const target = resolve(dirname(file), spec);
        if (target.startsWith(RUNTIME_DIR + sep) || !existsSync(target) || !/\.(c|m)?js$/.test(target)) continue;
        visit(target);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        const name = packageName(spec);
        if (!packages.has(name)) packages.set(name, packageVersion(name, file));
      }
    }
  };
  visit(entry);
  return { files, packages };
}

/** Literal module specifiers in compiled JavaScript (comments are not excluded: a false hit only widens the closure). */
function importedSpecifiers(js: string): string[] {
  const out: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^'"`;]*?\bfrom\s*['"]([^'"]+)['"]/g, // import x from '...'; export * from '...'
    /\bimport\s*['"]([^'"]+)['"]/g, // import '...'
    /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g, // import('...')
    /\brequire\)?\(\s*['"]([^'"]+)['"]\s*\)/g, // require('...'), createRequire(...)('...')
    /\)\(\s*['"]([^'"]+)['"]\s*\)/g, // createRequire(import.meta.url)('...')
    /\bnew URL\(\s*['"]([^'"]+)['"]\s*,\s*import\.meta\.url\s*\)/g, // a file next to this module
  ];
  for (const re of patterns) for (const m of js.matchAll(re)) out.push(m[1]);
  return out;
}

function packageName(spec: string): string {
  const parts = spec.split('/');
  return spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** The version of the package `name` as Node would find it from `fromFile`; "?" if not installed. */
function packageVersion(name: string, fromFile: string): string {
  for (let dir = dirname(fromFile); ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(manifest)) {
      try {
        return String(JSON.parse(readFileSync(manifest, 'utf8')).version);
      } catch {
        return '?';
      }
    }
    if (dirname(dir) === dir) return '?';
  }
}
