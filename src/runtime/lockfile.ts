/**
 * The lock file next to a pipeline (`scaling.yaml` -> `scaling.lock.json`, meant to be committed,
 * like dvc.lock): for each instance, every part of its cache key, so that `status` can say why
 * a stage is stale. Written atomically and merged under a short mutex, so concurrent runs of
 * different targets keep each other's entries.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockSync, unlock } from './fsutil.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { KeyParts } from './evaluate.js';

/** What the lock file records per instance: the parts of its cache key, and its output digest. */
export interface LockEntry extends KeyParts {
  /** Digest of this instance's outputs. */
  outputs: string;
}

export interface LockFile {
  format: 'pipeline-lock/1';
  pipeline: string;
  instances: Record<string, LockEntry>;
}

export function lockPathFor(pipelineFile: string): string {
  return pipelineFile.replace(/(\.ya?ml)?$/, '.lock.json');
}

export function readLock(path: string): LockFile | undefined {
  try {
    const lock = JSON.parse(readFileSync(path, 'utf8')) as LockFile;
    return lock && typeof lock.instances === 'object' ? lock : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Merges `updates` into the lock file; entries of instances not in `keep` (no longer in the
 * pipeline) are dropped. Sorted keys, so the file diffs well in git.
 */
export function updateLock(path: string, pipeline: string, updates: Map<string, LockEntry>, keep?: Set<string>): void {
  const mutex = `${path}.mutex`;
  lockSync(mutex);
  try {
    const current = readLock(path)?.instances ?? {};
    for (const [name, entry] of updates) current[name] = entry;
    const names = Object.keys(current)
      .filter((n) => !keep || keep.has(n))
      .sort();
    const lock: LockFile = {
      format: 'pipeline-lock/1',
      pipeline,
      instances: Object.fromEntries(names.map((n) => [n, current[n]])),
    };
    writeFileAtomic(path, JSON.stringify(lock, null, 2) + '\n');
  } finally {
    unlock(mutex);
  }
}

/** Records the lock files runs wrote into `artifacts/locks-index.json`, for `gc`. */
export function registerLockFile(artifactsRoot: string, lockPath: string): void {
  const index = join(artifactsRoot, 'locks-index.json');
  let paths: string[] = [];
  try {
    paths = JSON.parse(readFileSync(index, 'utf8'));
  } catch {
    /* first one */
  }
  if (paths.includes(lockPath)) return;
  const mutex = `${index}.mutex`;
  lockSync(mutex);
  try {
    try {
      paths = JSON.parse(readFileSync(index, 'utf8'));
    } catch {
      paths = [];
    }
    if (!paths.includes(lockPath)) writeFileAtomic(index, JSON.stringify([...paths, lockPath].sort(), null, 1));
  } finally {
    unlock(mutex);
  }
}
