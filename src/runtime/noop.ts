/**
 * The no-op fast path. A run whose every instance ends cached (or ran) leaves a snapshot of
 * what its decisions depended on: the bytes of the pipeline files, the stats of the runtime and
 * stage code, the stats of every input file, the lock file's stats, and each instance's key.
 * The next `pipeline run` with the same file and arguments checks that snapshot first, with
 * node built-ins only (no YAML parser, schema compiler or stage modules to load), verifies each
 * cache entry as usual (manifest + size/mtime of its files), and if nothing changed reports
 * everything cached. Any difference, or any doubt, falls through to the normal run.
 * (Like ninja's log: the no-op is the most frequent run and should cost milliseconds.)
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { lookupEntry, type Artifacts } from './cache.js';
import { writeFileAtomic } from '../util/atomic-write.js';

export interface Snapshot {
  format: 'pipeline-noop/1';
  pipeline: string;
  /** Pipeline file and the files it extends: [absolute path, sha256]. */
  files: Array<[string, string]>;
  /** Digest of the stats of every .js file of the program (runtime and stage code). */
  code: string;
  /** Lock file [size, mtimeMs], or null if absent. */
  lock: [number, number] | null;
  /** Input files [absolute path, size, mtimeMs] and input folders [absolute path, listing digest]. */
  inputs: Array<[string, number, number]>;
  dirs: Array<[string, string]>;
  /** Instances in order, with their keys. */
  instances: Array<[string, string]>;
  /** Closing lines of the run: where its final results are. */
  results?: string[];
}

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

export function snapshotPath(art: Artifacts, pipelineFile: string, args: unknown): string {
  return join(art.root, 'noop', `${sha(JSON.stringify([pipelineFile, args])).slice(0, 32)}.json`);
}

/** Digest of (path, size, mtime) of every .js file under the program's folder. */
export function codeDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        const st = statSync(p);
        h.update(`${p}\0${st.size}\0${st.mtimeMs}\n`);
      }
    }
  };
  walk(dir);
  return h.digest('hex');
}

export function lockStat(lockFile: string): [number, number] | null {
  try {
    const st = statSync(lockFile);
    return [st.size, st.mtimeMs];
  } catch {
    return null;
  }
}

/**
 * Digest of a folder's listing with sizes and mtimes (an input folder unchanged iff equal), and
 * the newest mtime in it (a racily fresh file cannot vouch for the folder).
 */
export function dirListing(dir: string): { digest: string; newestMtimeMs: number } {
  const h = createHash('sha256');
  let newestMtimeMs = 0;
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const st = statSync(join(dir, r));
      if (st.isDirectory()) walk(r);
      else {
        h.update(`${r}\0${st.size}\0${st.mtimeMs}\n`);
        newestMtimeMs = Math.max(newestMtimeMs, st.mtimeMs);
      }
    }
  };
  walk('');
  return { digest: h.digest('hex'), newestMtimeMs };
}

/**
 * Returns the instance names if the snapshot still holds and every entry is intact; else
 * undefined (run normally).
 */
export async function checkSnapshot(
  path: string,
  art: Artifacts,
  lockFile: string,
  codeDir: string,
): Promise<Snapshot | undefined> {
  let snap: Snapshot;
  try {
    snap = JSON.parse(readFileSync(path, 'utf8'));
    if (snap.format !== 'pipeline-noop/1') return undefined;
    for (const [file, digest] of snap.files) if (sha(readFileSync(file)) !== digest) return undefined;
    const lock = lockStat(lockFile);
    if (JSON.stringify(lock) !== JSON.stringify(snap.lock)) return undefined;
    for (const [file, size, mtimeMs] of snap.inputs) {
      const st = statSync(file);
      if (st.size !== size || st.mtimeMs !== mtimeMs) return undefined;
    }
    for (const [dir, listing] of snap.dirs) if (dirListing(dir).digest !== listing) return undefined;
    if (codeDigest(codeDir) !== snap.code) return undefined;
  } catch {
    return undefined;
  }
  for (const [, key] of snap.instances) {
    const hit = await lookupEntry(art, key);
    if (!hit.ok) return undefined;
  }
  return snap;
}

export interface NoopArgs {
  file: string;
  targets: string[];
  set: Array<[string, string]>;
  artifacts?: string;
  progress?: 'tty' | 'plain';
  /** dist/src: the program whose code the snapshot fingerprints. */
  codeDir: string;
}

/** The id of a run's snapshot: same file, same targets and --set values. */
export function snapshotArgs(a: Pick<NoopArgs, 'targets' | 'set'>): unknown {
  return { targets: a.targets, set: a.set };
}

/** Reports a no-op run from its snapshot; undefined when a normal run is needed. */
export async function tryNoopRun(a: NoopArgs): Promise<number | undefined> {
  const t0 = Date.now();
  const { findPipelineFile } = await import('./project.js');
  const { Artifacts, artifactsRoot } = await import('./cache.js');
  const { lockPathFor } = await import('./lockfile.js');
  let file: string;
  try {
    file = findPipelineFile(a.file);
  } catch {
    return undefined; // the normal path reports it
  }
  const art = new Artifacts(artifactsRoot(file, a.artifacts));
  const snap = await checkSnapshot(snapshotPath(art, file, snapshotArgs(a)), art, lockPathFor(file), a.codeDir);
  if (!snap) return undefined;
  const { createReporter } = await import('./progress.js');
  const { formatDuration } = await import('./format.js');
  const reporter = createReporter(process.stderr, { tty: a.progress ? a.progress === 'tty' : undefined });
  for (const [name] of snap.instances) reporter.finished(name, 'cached');
  reporter.note(
    `${snap.pipeline}: 0 ran, ${snap.instances.length} cached in ${formatDuration(Date.now() - t0)} (nothing changed since the last run)`,
  );
  reporter.close();
  if (snap.results?.length) process.stderr.write(snap.results.join('\n') + '\n');
  return 0;
}

export function writeSnapshot(path: string, snap: Snapshot): void {
  const text = JSON.stringify(snap);
  try {
    if (readFileSync(path, 'utf8') === text) return;
  } catch {
    /* new */
  }
  writeFileAtomic(path, text);
}
