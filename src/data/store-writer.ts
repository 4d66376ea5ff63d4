/**
 * Writes an activation store (StoreHeader in src/formats/store.ts, "activation-store/1"):
 * `data.bin` (rows * d values, row-major, little-endian float16 bits or float32) and
 * `store.json` (rows, d, dtype, sources with sha256). Rows are appended as they are decoded;
 * each write (and its flush to disk) overlaps the decoding of the next block (at most one write
 * in flight), so memory stays bounded by two blocks. store.json is written last, by finish().
 */
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import { halvesToFloats, floatToHalf } from './float16.js';

import { STORE_DATA_FILE, STORE_HEADER_FILE } from './store-format.js';
import { STORE_FORMAT, type StoreDtype, type StoreHeader, type StoreSource } from '../formats/store.js';
export type { StoreDtype, StoreHeader, StoreSource } from '../formats/store.js';

/** Values to append: a Uint16Array holds float16 bits; Float32Array/Float64Array hold numbers. */
export type SourceValues = Uint16Array | Float32Array | Float64Array;

export class StoreWriter {
  private rows = 0;
  private d = -1;
  private pending: Promise<unknown> = Promise.resolve();
  private readonly sources: StoreSource[] = [];

  private constructor(
    readonly dir: string,
    readonly dtype: StoreDtype,
    readonly column: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(dir: string, opts: { dtype: StoreDtype; column: string }): Promise<StoreWriter> {
    if (endianness() !== 'LE')
      throw new Error('the activation store is little-endian; big-endian hosts are not supported');
    const handle = await open(join(dir, STORE_DATA_FILE), 'w');
    return new StoreWriter(dir, opts.dtype, opts.column, handle);
  }

  get rowCount(): number {
    return this.rows;
  }

  /** Appends `rows` rows of `d` values (values.length === rows * d), converting to the store dtype. */
  async append(values: SourceValues, rows: number, d: number): Promise<void> {
    if (values.length !== rows * d) throw new Error(`append: ${values.length} values is not ${rows} rows of d=${d}`);
    if (this.d >= 0 && d !== this.d) throw new Error(`append: rows of d=${d} after rows of d=${this.d}`);
    this.d = d;
    const converted = this.convert(values);
    await this.pending; // one write in flight at most
    const bytes = new Uint8Array(converted.buffer, converted.byteOffset, converted.byteLength);
    // flush each block as it is written: the disk works while the next block is decoded,
    // instead of one long fsync of the whole store at the end
    this.pending = this.writeAll(bytes).then(() => this.handle.datasync());
    this.rows += rows;
  }

  addSource(source: StoreSource): void {
    this.sources.push(source);
  }

  /** Flushes data.bin and writes store.json; returns the header. */
  async finish(): Promise<StoreHeader> {
    await this.pending;
    await this.handle.sync();
    await this.handle.close();
    if (this.rows === 0) throw new Error('no rows to store');
    const header: StoreHeader = {
      format: STORE_FORMAT,
      rows: this.rows,
      d: this.d,
      dtype: this.dtype,
      byteOrder: 'little',
      sources: this.sources,
      column: this.column,
    };
    await writeFile(join(this.dir, STORE_HEADER_FILE), JSON.stringify(header, null, 2) + '\n');
    return header;
  }

  /** Closes data.bin after a failure; no store.json is written. */
  async abort(): Promise<void> {
    await this.pending.catch(() => {});
    await this.handle.close().catch(() => {});
  }

  private async writeAll(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      const { bytesWritten } = await this.handle.write(bytes, offset, bytes.length - offset);
      offset += bytesWritten;
    }
  }

  private convert(values: SourceValues): Uint16Array | Float32Array {
    if (this.dtype === 'float16') {
      if (values instanceof Uint16Array) return values;
      return floatToHalf(values);
    }
    if (values instanceof Uint16Array) return halvesToFloats(values);
    if (values instanceof Float32Array) return values;
    return Float32Array.from(values);
  }
}
