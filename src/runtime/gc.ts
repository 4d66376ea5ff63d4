/**
 * `pipeline gc`: removes what no lock file and no live run references, and with it every
 * piece of state that belonged to it (docs/artifacts.md lists them all): cache entries, work
 * folders, temporary folders of dead runs, logs, no-op snapshots, input-hash memo entries,
 * lock-file index entries, entry locks of dead runs and the YAML parse cache.
 *
 * All of it happens under artifacts/gc.lock; a run leases each key before it uses it and
 * waits while gc holds that lock (see lease.ts), so nothing a live run may use is removed.
 */
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, type Dirent } from 'node:fs';
import { dirname, join } from 'node:path';
import { Artifacts, artifactsRoot } from './cache.js';
import { EnvironmentError, EXIT } from './errors.js';
import { breakIfStale, lockHeldByLiveProcess, lockSync, unlock } from './fsutil.js';
import { gcLockPath, leasedKeys } from './lease.js';
import { readLock } from './lockfile.js';
import { PARSE_CACHE } from './yaml-source.js';
import { findPipelineFile } from './project.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** What gc removed (or would remove, with --dry-run), by kind of state. */
interface Removed {
  entries: number;
  works: number;
  logs: number;
  snapshots: number;
  memoEntries: number;
  indexEntries: number;
  deadLocks: number;
}

/**
 * Removes cache entries no lock file references: the lock files under the project's
 * `pipelines/` folder and those recorded in artifacts/locks-index.json by past runs.
 * Entries a live run may use (its lease, or an entry lock it holds) are kept, as are their
 * work folders.
 */
export function gcCommand(o: { file?: string; artifacts?: string; dryRun: boolean }): number {
  const root = o.file ? artifactsRoot(findPipelineFile(o.file), o.artifacts) : artifactsRoot(undefined, o.artifacts);
  const art = new Artifacts(root);
  if (!existsSync(art.cache)) {
    console.log(`nothing to collect: ${root} has no cache`);
    return EXIT.ok;
  }
  const gcLock = gcLockPath(art);
  try {
    lockSync(gcLock, 60_000);
  } catch {
    throw new EnvironmentError(`another pipeline gc is collecting ${root} (${gcLock}): try again when it is done`);
  }
  try {
    // Leases first, lock files second: a run records its lock file before it drops its lease.
    const keep = leasedKeys(art);
    const lockFiles = findLockFiles(root);
    for (const f of lockFiles) for (const e of Object.values(readLock(f)?.instances ?? {})) keep.add(e.key);
    const inUse = (key: string) => keep.has(key) || lockHeldByLiveProcess(art.entryLock(key));
    const { removed, kept } = collect(art, inUse, o.dryRun);
    const n = removed;
    const verb = o.dryRun ? 'would remove' : 'removed';
    console.log(
      `${verb} ${n.entries} cache entries and ${n.works} work folders, ${n.logs} logs, ` +
        `${n.snapshots} no-op snapshots, ${n.memoEntries} memo entries, ${n.indexEntries} index entries, ` +
        `${n.deadLocks} dead locks; kept ${kept} entries referenced by ${lockFiles.size} lock files or live runs`,
    );
    return EXIT.ok;
  } finally {
    unlock(gcLock);
  }
}

/** Every *.lock.json under the project's pipelines/ folder, and those runs recorded in the index. */
function findLockFiles(root: string): Set<string> {
  const lockFiles = new Set<string>();
  const scan = (dir: string, depth: number) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && depth < 6 && e.name !== 'node_modules' && !e.name.startsWith('.'))
        scan(join(dir, e.name), depth + 1);
      else if (e.isFile() && e.name.endsWith('.lock.json')) lockFiles.add(join(dir, e.name));
    }
  };
  scan(join(dirname(root), 'pipelines'), 0);
  for (const f of readIndex(root)) if (existsSync(f)) lockFiles.add(f);
  return lockFiles;
}

/** Removes (or counts) everything that does not belong to a key in use; under the gc lock. */
function collect(art: Artifacts, inUse: (key: string) => boolean, dryRun: boolean): { removed: Removed; kept: number } {
  const remove = (path: string) => dryRun || rmSync(path, { recursive: true, force: true });
  let kept = 0;
  let entries = 0;
  for (const key of readdirSync(art.cache)) {
    if (inUse(key)) kept++;
    else {
      entries++;
      remove(art.entryDir(key));
    }
  }
  let works = 0;
  const keptWorks = new Set<string>();
  for (const name of existsSync(art.work) ? readdirSync(art.work) : []) {
    // A work folder, or the record of the processes started for it (<key>.processes).
    const key = name.replace(/\.processes$/, '');
    // A Slurm job recorded there may still be running for a runner that died: the next run adopts it.
    if (inUse(key) || existsSync(join(art.workDir(key), '.slurm', 'job.json'))) {
      keptWorks.add(key);
      continue;
    }
    if (name === key) works++;
    remove(join(art.work, name));
  }
  // What belongs to an entry or work folder that stays, stays.
  const stays = (key: string) => inUse(key) || keptWorks.has(key);
  const removed: Removed = {
    entries,
    works,
    logs: collectLogs(art, stays, remove, dryRun),
    snapshots: collectSnapshots(art, stays, remove),
    memoEntries: pruneHashMemo(join(art.root, 'filehash.json'), dryRun),
    indexEntries: pruneLockIndex(art.root, dryRun),
    deadLocks: collectDeadLocks(art, dryRun),
  };
  if (!dryRun) {
    art.removeOrphanTmp();
    // The per-user cache of parsed pipeline files: a cache only, rebuilt on demand.
    rmSync(PARSE_CACHE, { recursive: true, force: true });
  }
  return { removed, kept };
}

/** logs/<pipeline>/<instance>.log whose header names a key that does not stay; empty folders too. */
function collectLogs(
  art: Artifacts,
  stays: (key: string) => boolean,
  remove: (path: string) => void,
  dryRun: boolean,
): number {
  let removed = 0;
  for (const pipeline of listDir(art.logs)) {
    const dir = join(art.logs, pipeline);
    const logs = listDir(dir);
    let left = logs.length;
    for (const name of logs) {
      const key = logKey(join(dir, name));
      // A log without a header is not one a run wrote (its header is its first write): left alone.
      if (key === undefined || stays(key)) continue;
      removed++;
      left--;
      remove(join(dir, name));
    }
    if (left === 0 && !dryRun) rmdirIfEmpty(dir);
  }
  return removed;
}

/** The cache key in a log's first line (`# NAME (TYPE vN) key KEY`, see Runner.startLog). */
function logKey(path: string): string | undefined {
  let head: string;
  try {
    head = readFileSync(path, 'utf8').slice(0, 1000).split('\n')[0];
  } catch {
    return undefined;
  }
  return / key ([0-9a-f]{16,})$/.exec(head)?.[1];
}

/** noop/<digest>.json snapshots that name an instance whose entry does not stay (unusable: the next run checks every key). */
function collectSnapshots(art: Artifacts, stays: (key: string) => boolean, remove: (path: string) => void): number {
  const dir = join(art.root, 'noop');
  let removed = 0;
  for (const name of listDir(dir)) {
    let keys: string[];
    try {
      const snap = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { instances: Array<[string, string]> };
      keys = snap.instances.map(([, key]) => key);
    } catch {
      keys = []; // unreadable: useless, since a snapshot must parse to be used
    }
    if (keys.length && keys.every(stays)) continue;
    removed++;
    remove(join(dir, name));
  }
  return removed;
}

/**
 * Drops memo entries of files that are gone or changed (a lookup would miss them anyway). A run
 * saving concurrently merges with what it reads: at worst it brings back an entry that no
 * longer matches, which a lookup ignores, or loses one, which costs a re-hash. Never a wrong digest.
 */
function pruneHashMemo(path: string, dryRun: boolean): number {
  let memo: Record<string, { size: number; mtimeMs: number }>;
  try {
    memo = JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return 0;
  }
  const current = (file: string) => {
    try {
      const st = statSync(file);
      return st.size === memo[file].size && st.mtimeMs === memo[file].mtimeMs;
    } catch {
      return false;
    }
  };
  const stale = Object.keys(memo).filter((file) => !current(file));
  if (stale.length && !dryRun) {
    for (const file of stale) delete memo[file];
    writeFileAtomic(path, JSON.stringify(memo));
  }
  return stale.length;
}

/** Removes index entries of lock files that no longer exist, under the mutex runs register with. */
function pruneLockIndex(root: string, dryRun: boolean): number {
  const index = join(root, 'locks-index.json');
  if (dryRun) return readIndex(root).filter((f) => !existsSync(f)).length;
  if (!existsSync(index)) return 0;
  const mutex = `${index}.mutex`;
  lockSync(mutex);
  try {
    const paths = readIndex(root);
    const live = paths.filter((f) => existsSync(f));
    if (live.length !== paths.length) writeFileAtomic(index, JSON.stringify(live, null, 1));
    return paths.length - live.length;
  } finally {
    unlock(mutex);
  }
}

function readIndex(root: string): string[] {
  try {
    return JSON.parse(readFileSync(join(root, 'locks-index.json'), 'utf8')) as string[];
  } catch {
    return [];
  }
}

/** Entry locks whose owner is dead (a run killed while it held one): broken as the next run would. */
function collectDeadLocks(art: Artifacts, dryRun: boolean): number {
  let removed = 0;
  for (const name of listDir(art.locks)) {
    const path = join(art.locks, name);
    if (!name.endsWith('.lock') || lockHeldByLiveProcess(path)) continue;
    if (dryRun || (breakIfStale(path) && !existsSync(path))) removed++;
  }
  return removed;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** Removes a folder if it is empty (a run may have added to it meanwhile: then it stays). */
function rmdirIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    /* not empty, or gone */
  }
}
