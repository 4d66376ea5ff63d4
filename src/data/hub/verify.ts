/**
 * Content verification: digests computed incrementally while bytes stream in (and over
 * a resumed file's existing prefix), checked against what the hub's listing promised.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { TreeFile } from './api.js';

const SHA256_HEX = /^[0-9a-f]{64}$/;
const SHA1_HEX = /^[0-9a-f]{40}$/;

/** What a file's bytes must hash to, from the listing (and the resolve headers). */
export interface Expected {
  size: number;
  /** LFS files: the sha256 of the content (lfs.oid, or X-Linked-Etag). */
  sha256?: string;
  /** Non-LFS files: the git blob sha1 (the listing's oid). */
  gitBlobSha1?: string;
}

export function expectedOf(file: TreeFile): Expected {
  const expected: Expected = { size: file.size };
  if (file.lfs) {
    if (SHA256_HEX.test(file.lfs.oid)) expected.sha256 = file.lfs.oid;
  } else if (file.oid && SHA1_HEX.test(file.oid)) {
    expected.gitBlobSha1 = file.oid;
  }
  return expected;
}

/** sha256 of the content (always: it is recorded in the outputs) and, if expected, the git blob sha1. */
export class ContentHasher {
  private sha256: Hash = createHash('sha256');
  private gitSha1?: Hash;
  bytes = 0;

  constructor(private readonly expected: Expected) {
    this.reset();
  }

  /** Start over from byte 0 (the server ignored a Range and sends the whole file). */
  reset(): void {
    this.sha256 = createHash('sha256');
    this.gitSha1 = undefined;
    if (this.expected.gitBlobSha1) {
      // git hashes "blob <size>\0" + content; the size is the listing's, checked separately.
      this.gitSha1 = createHash('sha1').update(`blob ${this.expected.size}\0`);
    }
    this.bytes = 0;
  }

  update(chunk: Uint8Array): void {
    this.sha256.update(chunk);
    this.gitSha1?.update(chunk);
    this.bytes += chunk.length;
  }

  /** Feeds the first `length` bytes of a file on disk (a partial download being resumed). */
  async updateFromFile(path: string, length: number): Promise<void> {
    if (length === 0) return;
    for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 })) {
      this.update(chunk as Buffer);
    }
  }

  /** Finishes the digests; returns the sha256 and a description of any mismatch. */
  finish(): { sha256: string; problem?: string } {
    const sha256 = this.sha256.digest('hex');
    const { expected } = this;
    if (this.bytes !== expected.size) {
      return { sha256, problem: `size mismatch: expected ${expected.size} bytes, got ${this.bytes}` };
    }
    if (expected.sha256 && sha256 !== expected.sha256) {
      return { sha256, problem: `sha256 mismatch: expected ${expected.sha256}, got ${sha256}` };
    }
    const gitSha1 = this.gitSha1?.digest('hex');
    if (expected.gitBlobSha1 && gitSha1 !== expected.gitBlobSha1) {
      return { sha256, problem: `git blob sha1 mismatch: expected ${expected.gitBlobSha1}, got ${gitSha1}` };
    }
    return { sha256 };
  }
}
