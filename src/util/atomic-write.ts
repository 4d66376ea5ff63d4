/** The one atomic file write, for the runtime (cache, lock files) and the domain (checkpoints, exports). */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/**
 * Writes via a temporary sibling, fsync and rename: readers see the old or the new file, never
 * half, and after a crash of the machine too.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const temp = new TempSibling(path);
  try {
    writeFileSync(temp.fd, data); // loops until all is written, unlike writeSync
  } catch (e) {
    temp.abandon();
    throw e;
  }
  temp.commit();
}

/**
 * The same, for a file written piece by piece (`write` gets the open descriptor): a checkpoint
 * as large as the model is streamed from the engine instead of assembled in memory first. If
 * `write` throws, the previous file stays as it was.
 */
export async function writeFileAtomicWith(path: string, write: (fd: number) => Promise<void>): Promise<void> {
  const temp = new TempSibling(path);
  try {
    await write(temp.fd);
  } catch (e) {
    temp.abandon();
    throw e;
  }
  temp.commit();
}

/** An open temporary file beside `path`, renamed over it once complete or removed. */
class TempSibling {
  readonly tmp: string;
  readonly fd: number;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.tmp = join(dirname(path), `.${process.pid}-${randomBytes(4).toString('hex')}.tmp`);
    this.fd = openSync(this.tmp, 'w');
  }

  commit(): void {
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      renameSync(this.tmp, this.path);
    } catch (e) {
      this.abandon();
      throw e;
    }
  }

  abandon(): void {
    try {
      closeSync(this.fd);
    } catch {
      // already closed (a failed commit)
    }
    rmSync(this.tmp, { force: true });
  }
}
