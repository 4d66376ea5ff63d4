/**
 * Reading an activation store (StoreHeader in src/formats/store.ts): `store.json` + `data.bin`,
 * R rows of D little-endian float16/float32 values, row-major.
 *
 * Two ways to get rows, chosen per store by size:
 * - small stores (data.bin <= `maxInMemoryBytes`, 512 MiB by default) are read into memory once,
 *   and a batch is a gather straight out of that buffer;
 * - large stores (the real dataset is 2.7 GB) are read with positional reads on one file
 *   descriptor, issued all at once on libuv's thread pool (rows sorted, adjacent rows coalesced
 *   into one read), so the reads of the next batches overlap the caller's training step.
 * float16 rows are converted by a WebAssembly SIMD kernel (float16-simd.ts), or by a 65536-entry
 * table where SIMD is missing or d is not a multiple of 8; both give the same bits.
 */
import { closeSync, existsSync, fstatSync, openSync, read, readFileSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { halfToFloat } from '../float16.js';
import { halfRowsToFloatSimd } from './float16-simd.js';

import { STORE_DATA_FILE, STORE_HEADER_FILE } from '../store-format.js';
import { readFormat } from '../../formats/read.js';
import { StoreHeader, type StoreDtype } from '../../formats/store.js';
export type { StoreDtype, StoreHeader } from '../../formats/store.js';

/**
 * Raw bytes of some rows: row k of the request starts at byte `offsets[k]` of `bytes`.
 * For an in-memory store `bytes` is the whole data, for a file store a fresh read buffer.
 */
export interface RawRows {
  bytes: Uint8Array;
  offsets: Float64Array;
}

export interface OpenStoreOptions {
  /** Stores whose data.bin is at most this large are read into memory once. Default 512 MiB. */
  maxInMemoryBytes?: number;
  /** Convert float16 with the WebAssembly SIMD kernel where available (else the lookup table). Default true. */
  simd?: boolean;
}

export const DEFAULT_MAX_IN_MEMORY_BYTES = 512 * 1024 * 1024;

/**
 * A store this small (the demo's is 38 MB) is cheap to hold twice: a batch worker reads it once
 * instead of one positional read per row, and small batches are assembled on the caller.
 */
export const SMALL_STORE_BYTES = 64 * 2 ** 20;

export class ActivationStore {
  readonly rows: number;
  readonly d: number;
  readonly dtype: StoreDtype;
  readonly bytesPerRow: number;
  readonly dataPath: string;
  /** Whether rows are served from memory (small store) or from positional file reads. */
  readonly inMemory: boolean;
  /** Whether float16 is converted by the SIMD kernel (when the engine has it). */
  readonly simd: boolean;
  private memory?: Uint8Array;
  private fd?: number;

  constructor(
    readonly dir: string,
    readonly header: StoreHeader,
    options: OpenStoreOptions = {},
  ) {
    this.rows = header.rows;
    this.d = header.d;
    this.dtype = header.dtype;
    this.bytesPerRow = header.d * (header.dtype === 'float16' ? 2 : 4);
    this.dataPath = join(dir, STORE_DATA_FILE);
    const limit = options.maxInMemoryBytes ?? DEFAULT_MAX_IN_MEMORY_BYTES;
    this.inMemory = this.rows * this.bytesPerRow <= limit;
    this.simd = options.simd ?? true;
  }

  /**
   * Reads `count` consecutive rows starting at `start` as float32 (times `scale`) into `out`
   * (allocated when omitted). Synchronous: meant for evaluation sets and tools, not the hot loop.
   */
  readRows(start: number, count: number, out?: Float32Array, scale = 1): Float32Array {
    this.checkRange(start, count);
    const dst = out ?? new Float32Array(count * this.d);
    if (dst.length < count * this.d) {
      throw new Error(
        `readRows: output holds ${dst.length} values, ${count} rows of d=${this.d} need ${count * this.d}`,
      );
    }
    let raw: RawRows;
    if (this.inMemory) {
      raw = { bytes: this.data(), offsets: rowOffsets(start, count, this.bytesPerRow) };
    } else {
      const bytes = alignedBytes(count * this.bytesPerRow);
      const n = readSync(this.file(), bytes, 0, bytes.length, start * this.bytesPerRow);
      if (n !== bytes.length) throw this.truncated(start * this.bytesPerRow + n);
      raw = { bytes, offsets: rowOffsets(0, count, this.bytesPerRow) };
    }
    this.decode(raw, dst, scale);
    return dst;
  }

  /** Fetches the raw bytes of arbitrary rows (any order, repeats allowed). */
  async fetch(indices: ArrayLike<number>): Promise<RawRows> {
    for (let k = 0; k < indices.length; k++) this.checkRange(indices[k], 1);
    if (this.inMemory) {
      const offsets = new Float64Array(indices.length);
      for (let k = 0; k < indices.length; k++) offsets[k] = indices[k] * this.bytesPerRow;
      return { bytes: this.data(), offsets };
    }
    return this.fetchFromFile(indices);
  }

  /** Converts fetched rows to float32 (times `scale`), row k of the request into out[k*d..]. */
  decode(raw: RawRows, out: Float32Array, scale = 1): void {
    const d = this.d;
    const { bytes, offsets } = raw;
    if (this.dtype === 'float16') {
      const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 1);
      const starts = offsets.map((o) => o / 2);
      if (this.simd && halfRowsToFloatSimd(halves, starts, d, out, scale)) return;
      for (let k = 0; k < offsets.length; k++) halfToFloat(halves, starts[k], out, k * d, d, scale);
    } else {
      const floats = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
      for (let k = 0; k < offsets.length; k++) {
        const src = floats.subarray(offsets[k] / 4, offsets[k] / 4 + d);
        if (scale === 1) out.set(src, k * d);
        else for (let i = 0; i < d; i++) out[k * d + i] = src[i] * scale;
      }
    }
  }

  /** Releases the file descriptor and the in-memory copy. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.memory = undefined;
  }

  /**
   * The same as fetch(), for a worker thread: synchronous positional reads (one per run of
   * adjacent rows) are cheapest there, and the main thread is not blocked by them.
   */
  fetchSync(indices: ArrayLike<number>): RawRows {
    for (let k = 0; k < indices.length; k++) this.checkRange(indices[k], 1);
    if (this.inMemory) return { bytes: this.data(), offsets: Float64Array.from(indices, (i) => i * this.bytesPerRow) };
    const { bytes, offsets, runs } = this.planReads(indices);
    const fd = this.file();
    for (const run of runs) {
      const n = readSync(fd, bytes, run.at, run.length, run.position);
      if (n !== run.length) throw this.truncated(run.position + n);
    }
    return { bytes, offsets };
  }

  /**
   * One positional read per run of adjacent rows, all issued at once: libuv's thread pool
   * serves them in parallel while the main thread keeps training.
   */
  private fetchFromFile(indices: ArrayLike<number>): Promise<RawRows> {
    const { bytes, offsets, runs } = this.planReads(indices);
    const fd = this.file();
    return new Promise((resolve, reject) => {
      let pending = runs.length;
      let failed = false;
      if (pending === 0) resolve({ bytes, offsets });
      for (const { at, length, position } of runs) {
        read(fd, bytes, at, length, position, (err, n) => {
          if (failed) return;
          if (err || n !== length) {
            failed = true;
            reject(
              err
                ? new Error(`reading ${this.dataPath} at byte ${position}: ${err.message}`)
                : this.truncated(position + n),
            );
            return;
          }
          if (--pending === 0) resolve({ bytes, offsets });
        });
      }
    });
  }

  /** Rows sorted by position, adjacent ones coalesced: where each read lands in one buffer. */
  private planReads(indices: ArrayLike<number>) {
    const order = Array.from({ length: indices.length }, (_, k) => k).sort((a, b) => indices[a] - indices[b]);
    const bytes = alignedBytes(indices.length * this.bytesPerRow);
    const offsets = new Float64Array(indices.length);
    const runs: Array<{ at: number; length: number; position: number }> = [];
    let prevRow = -2;
    for (let s = 0; s < order.length; s++) {
      const row = indices[order[s]];
      const at = s * this.bytesPerRow;
      offsets[order[s]] = at;
      if (row === prevRow + 1) runs[runs.length - 1].length += this.bytesPerRow;
      else runs.push({ at, length: this.bytesPerRow, position: row * this.bytesPerRow });
      prevRow = row;
    }
    return { bytes, offsets, runs };
  }

  private data(): Uint8Array {
    if (!this.memory) {
      const buf = readFileSync(this.dataPath);
      this.memory = buf.byteOffset % 4 === 0 ? buf : new Uint8Array(buf);
      if (this.memory.length !== this.rows * this.bytesPerRow) throw this.truncated(this.memory.length);
    }
    return this.memory;
  }

  private file(): number {
    if (this.fd === undefined) this.fd = openSync(this.dataPath, 'r');
    return this.fd;
  }

  private checkRange(start: number, count: number): void {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.rows) {
      throw new Error(`store ${this.dir}: rows [${start}, ${start + count}) are outside [0, ${this.rows})`);
    }
  }

  private truncated(atByte: number): Error {
    return new Error(
      `${this.dataPath} is truncated: expected ${this.rows * this.bytesPerRow} bytes (${this.rows} rows x ` +
        `${this.bytesPerRow}), read ended at ${atByte}`,
    );
  }
}

/** Opens and validates a store folder. Throws a clear error naming the file and field. */
export function openStore(dir: string, options: OpenStoreOptions = {}): ActivationStore {
  if (endianness() !== 'LE') throw new Error('the activation store loader needs a little-endian machine');
  const headerPath = join(dir, STORE_HEADER_FILE);
  if (!existsSync(headerPath)) throw new Error(`not an activation store: ${headerPath} does not exist`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(headerPath, 'utf8'));
  } catch (e) {
    throw new Error(`${headerPath}: invalid JSON (${(e as Error).message})`);
  }
  const header = readFormat(StoreHeader, raw, headerPath);
  const store = new ActivationStore(dir, header, options);
  const dataPath = join(dir, STORE_DATA_FILE);
  if (!existsSync(dataPath)) throw new Error(`store ${dir}: ${dataPath} does not exist`);
  const fd = openSync(dataPath, 'r');
  const size = fstatSync(fd).size;
  closeSync(fd);
  const expected = header.rows * store.bytesPerRow;
  if (size !== expected) {
    throw new Error(
      `${dataPath} has ${size} bytes, store.json says ${header.rows} rows x ${header.d} ${header.dtype} = ${expected}`,
    );
  }
  return store;
}

function rowOffsets(start: number, count: number, bytesPerRow: number): Float64Array {
  const offsets = new Float64Array(count);
  for (let k = 0; k < count; k++) offsets[k] = (start + k) * bytesPerRow;
  return offsets;
}

/** A fresh buffer whose start is 4-byte aligned, so typed-array views over it are legal. */
function alignedBytes(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(n));
}
