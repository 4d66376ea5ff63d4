/** Small file-system helpers: exclusive lock files, process liveness, tree links. */
import {
  copyFileSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
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

/**
 * When a process started, in clock ticks since boot (Linux /proc), so that a recycled pid is
 * not taken for the process that wrote a lock; undefined where /proc is not available.
 */
export function processStart(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces and parentheses): state is field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[19]); // field 22, starttime
  } catch {
    return undefined;
  }
}

/** A process identified by pid and start time: what lock and lease files record. */
export interface ProcessId {
  pid: number;
  host: string;
  /** processStart(pid) when written; absent in locks of older versions. */
  start?: number;
}

const HOST = hostname();

export function thisProcess(): ProcessId {
  return { pid: process.pid, host: HOST, start: processStart(process.pid) };
}

/** Whether the process that wrote an owner record may still be running (another host: assume so). */
export function processAlive(owner: ProcessId): boolean {
  if (owner.host !== HOST) return true;
  if (!pidAlive(owner.pid)) return false;
  if (owner.start === undefined) return true;
  const start = processStart(owner.pid);
  return start === undefined || start === owner.start;
}

/**
 * Tries once to take an exclusive lock file; breaks it first if its owner process is dead.
 * The owner record is written to a temporary file and linked into place (link fails if the
 * lock exists), so a lock file is never seen empty or half-written: a full disk makes taking
 * the lock fail with an error, instead of leaving an empty lock that looks held forever.
 */
export function tryLock(path: string): boolean {
  mkdirSync(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 2; attempt++) {
    const tmp = `${path}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(thisProcess()), { flag: 'wx' });
      linkSync(tmp, path);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw Object.assign(new Error(`cannot take the lock ${path}: ${(e as Error).message}`), {
          code: (e as NodeJS.ErrnoException).code,
        });
      }
    } finally {
      rmSync(tmp, { force: true });
    }
    if (!breakIfStale(path)) return false;
  }
  return false;
}

/** The owner record of a lock file; null if the file is there but holds no valid record. */
function readOwner(path: string): ProcessId | null | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const owner = JSON.parse(text) as ProcessId;
    return Number.isInteger(owner?.pid) && typeof owner.host === 'string' ? owner : null;
  } catch {
    return null;
  }
}

const sameOwner = (a: ProcessId | null | undefined, b: ProcessId | null) =>
  (a === null && b === null) || (!!a && !!b && a.pid === b.pid && a.start === b.start && a.host === b.host);

/**
 * A lock whose owner process is dead on this host is stale; so is a lock file holding no
 * owner record (locks are linked into place complete, so that is debris: an older version's
 * write that failed on a full disk). It is moved aside by rename (atomic: only one breaker
 * wins) and checked again, so a lock taken meanwhile survives.
 */
export function breakIfStale(path: string): boolean {
  const owner = readOwner(path);
  if (owner === undefined) return true; // gone already: retry
  if (owner && processAlive(owner)) return false;
  const aside = `${path}.stale-${process.pid}-${randomBytes(3).toString('hex')}`;
  try {
    renameSync(path, aside);
  } catch {
    return true; // someone else broke it: retry
  }
  const moved = readOwner(aside);
  if (!sameOwner(moved, owner)) {
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
  if (owner && owner.pid === process.pid && owner.host === HOST) {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  }
}

export function lockHeldByLiveProcess(path: string): boolean {
  const owner = readOwner(path);
  return !!owner && processAlive(owner);
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

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]. */
function procStat(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * Whether process group `pgid`, recorded when its leader started at `start`, still has a
 * running member. A group id is not reused while the group exists, so a group whose leader
 * is gone is still that group; a live leader with another start time is a recycled pid.
 * Zombies do not count (nothing may reap them in a container).
 */
export function groupAlive(pgid: number, start: number): boolean {
  if (!procStat('self')) {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch (e) {
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  }
  const leader = procStat(pgid);
  if (leader && leader[0] !== 'Z' && start && processStart(pgid) !== start) return false;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const f = procStat(name);
    if (f && Number(f[2]) === pgid && f[0] !== 'Z') return true;
  }
  return false;
}

/**
 * Ends the process groups a record file lists ("pgid start" lines, see spawnGroup) that are
 * still running: SIGKILL, then waits until they are gone (at most `timeoutMs`). Returns how
 * many were found alive. Used before a work folder is reused, so a stage of a dead run never
 * races its re-run there.
 */
export async function endRecordedGroups(file: string, timeoutMs = 10_000): Promise<number> {
  let lines: string[];
  try {
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return 0;
  }
  const alive = lines
    .map((l) => l.split(' ').map(Number))
    .filter(([pgid, start]) => pgid > 0 && groupAlive(pgid, start));
  for (const [pgid] of alive) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  }
  const until = Date.now() + timeoutMs;
  while (alive.some(([pgid, start]) => groupAlive(pgid, start)) && Date.now() < until) await sleep(50);
  rmSync(file, { force: true });
  return alive.length;
}

/**
 * `dst` made a second name for the tree `src` (cp -al): folders made afresh, every file a
 * hard link (a copy where the file system refuses one, e.g. across devices), symbolic links
 * made again with the same target. No data is written, and `src` stays whole whatever becomes
 * of `dst`: what a rename would have moved survives a crash before `dst` is put to use.
 */
export function linkTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const from = join(src, e.name);
    const to = join(dst, e.name);
    if (e.isDirectory()) linkTree(from, to);
    else if (e.isSymbolicLink()) symlinkSync(readlinkSync(from), to);
    else linkOrCopy(from, to, e.isFile());
  }
}

function linkOrCopy(from: string, to: string, isFile: boolean): void {
  try {
    linkSync(from, to);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!isFile || !['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP'].includes(code ?? '')) throw e;
    copyFileSync(from, to);
  }
}
