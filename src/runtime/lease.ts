/**
 * Run leases: the cache entries a live `pipeline run` may use, so that `pipeline gc` never
 * deletes them. A run appends each key to its lease file (artifacts/leases/<pid>-<start>.keys,
 * first line the owner) before it looks the entry up or computes it, and removes the file
 * only after its lock file records what it used. gc collects under artifacts/gc.lock and
 * keeps every key of every live lease; a run that finds gc.lock held waits for it to be
 * released before using the key it just leased. Either gc took its lock after the key was in
 * the lease (gc sees it), or before (the run waits): an entry a run uses is never deleted
 * under it. Leases of dead runs (pid gone, or recycled: the start time differs) are ignored
 * and removed.
 */
import { appendFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Artifacts } from './cache.js';
import { lockHeldByLiveProcess, processAlive, sleep, thisProcess, type ProcessId } from './fsutil.js';

const leaseDir = (art: Artifacts) => join(art.root, 'leases');
export const gcLockPath = (art: Artifacts) => join(art.root, 'gc.lock');

export class RunLease {
  private readonly path: string;
  private readonly held = new Set<string>();
  private created = false;

  constructor(private readonly art: Artifacts) {
    const me = thisProcess();
    this.path = join(leaseDir(art), `${me.pid}-${me.start ?? 0}.keys`);
  }

  /** Records that this run may use entry `key`; resolves once no gc is collecting. */
  async hold(key: string, signal?: AbortSignal): Promise<void> {
    if (!this.held.has(key)) {
      if (!this.created) {
        mkdirSync(leaseDir(this.art), { recursive: true });
        writeFileSync(this.path, `${JSON.stringify(thisProcess())}\n`);
        this.created = true;
      }
      appendFileSync(this.path, `${key}\n`);
      this.held.add(key);
    }
    while (lockHeldByLiveProcess(gcLockPath(this.art)) && !signal?.aborted) await sleep(50, signal);
  }

  release(): void {
    if (this.created) rmSync(this.path, { force: true });
  }
}

/** Keys leased by live runs; lease files of dead runs are removed. Call under the gc lock. */
export function leasedKeys(art: Artifacts): Set<string> {
  const keys = new Set<string>();
  let names: string[];
  try {
    names = readdirSync(leaseDir(art));
  } catch {
    return keys;
  }
  for (const name of names) {
    const path = join(leaseDir(art), name);
    let lines: string[];
    try {
      lines = readFileSync(path, 'utf8').split('\n');
    } catch {
      continue;
    }
    let owner: ProcessId | undefined;
    try {
      owner = JSON.parse(lines[0]);
    } catch {
      // A lease being created right now (its first line not written yet) holds no key yet.
    }
    if (owner && !processAlive(owner)) {
      rmSync(path, { force: true });
      continue;
    }
    for (const line of lines.slice(1)) if (line) keys.add(line);
  }
  return keys;
}
