/** Small file-system helpers: exclusive lock files, process liveness. */
import { closeSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface LockOwner {
  pid: number;
  host: string;
}

const HOST = hostname();

/** Tries once to create an exclusive lock file; removes it first if its owner process is dead. */
export function tryLock(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify({ pid: process.pid, host: HOST } satisfies LockOwner));
      closeSync(fd);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    if (!breakIfStale(path)) return false;
  }
  return false;
}

function readOwner(path: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * A lock whose owner process is dead on this host is stale. It is moved aside by rename
 * (atomic: only one breaker wins) and checked again, so a lock taken meanwhile survives.
 */
export function breakIfStale(path: string): boolean {
  const owner = readOwner(path);
  if (!owner) return false; // being written right now, or unreadable: treat as held
  if (owner.host !== HOST || pidAlive(owner.pid)) return false;
  const aside = `${path}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return true; // someone else broke it: retry
  }
  const moved = readOwner(aside);
  if (moved && moved.pid !== owner.pid) {
    // We moved a fresh lock taken after our check: put it back.
    try {
      renameSync(aside, path);
    } catch {
      /* gone */
    }
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}

export function unlock(path: string): void {
  const owner = readOwner(path);
  if (owner && owner.pid === process.pid) {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

export function lockHeldByLiveProcess(path: string): boolean {
  const owner = readOwner(path);
  if (!owner) return false;
  return owner.host !== HOST || pidAlive(owner.pid);
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Waits for an exclusive lock file, polling; returns false if aborted. */
export async function waitLock(path: string, signal?: AbortSignal, onWait?: () => void): Promise<boolean> {
  let delay = 50;
  let told = false;
  while (!tryLock(path)) {
    if (signal?.aborted) return false;
    if (!told && delay > 50) {
      // Told after the first short wait: a lock released at once needs no message.
      onWait?.();
      told = true;
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 500);
  }
  return true;
}

/** Synchronous short wait for a lock held only for milliseconds (lock-file merges). */
export function lockSync(path: string, timeoutMs = 10_000): void {
  const until = Date.now() + timeoutMs;
  while (!tryLock(path)) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${path}`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
