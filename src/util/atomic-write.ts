/** The one atomic file write, for the runtime (cache, lock files) and the domain (checkpoints, exports). */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes via a temporary sibling, fsync and rename: readers see the old or the new file, never
 * half, and after a crash of the machine too.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = tempSibling(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      writeFileSync(fd, data); // loops until all is written, unlike writeSync
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * The same, for a file written piece by piece (`write` gets the open descriptor): a checkpoint
 * as large as the model is streamed from the engine instead of assembled in memory first. If
 * `write` throws, the previous file stays as it was.
 */
export async function writeFileAtomicWith(path: string, write: (fd: number) => Promise<void>): Promise<void> {
  const tmp = tempSibling(path);
  try {
    const fd = openSync(tmp, 'w');
    try {
      await write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

function tempSibling(path: string): string {
  mkdirSync(dirname(path), { recursive: true });
  return join(dirname(path), `.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
}
