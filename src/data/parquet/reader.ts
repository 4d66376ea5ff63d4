/**
 * Reads the activation column of one parquet file, row group by row group.
 *
 * hyparquet parses the footer (schema, row groups, column chunk offsets); each column chunk is
 * then read from disk with one positioned read and decoded by the typed-array path
 * (fast-chunk.ts), or by hyparquet's generic reader for encodings that path does not cover.
 * Memory is bounded by one row group: its compressed chunk plus its decoded values.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { AsyncBuffer, ColumnMetaData, FileMetaData } from 'hyparquet';
import { asyncBufferFromFile, parquetMetadataAsync } from 'hyparquet';
import { resolveColumn, type ColumnLayout } from './column-layout.js';
import { UnsupportedLayoutError, allocValues, decodeChunkFast, type NativeValues } from './fast-chunk.js';
import { decodeRowGroupGeneric } from './generic-chunk.js';

export interface RowGroupData {
  group: number;
  /** Index of the group's first row in the file. */
  firstRow: number;
  rows: number;
  d: number;
  /** rows * d values, row-major: float16 bits, float32 or float64 as in the file. */
  values: NativeValues;
  /** Which decoder read it. */
  decoder: 'typed' | 'generic';
  compressedBytes: number;
}

/** Encodings the typed-array path decodes (values and levels). */
const TYPED_ENCODINGS = new Set(['PLAIN', 'PLAIN_DICTIONARY', 'RLE_DICTIONARY', 'RLE', 'BYTE_STREAM_SPLIT']);

export class ParquetColumnFile {
  /**
   * Buffers reused across row groups, so that memory is bounded by the row group size and does
   * not depend on when the GC frees 32 MB arrays: one for the compressed chunk (only used while
   * decoding) and two for decoded values, alternating, so a group's values stay valid while the
   * next group is decoded (the store writer overlaps writing one with decoding the next).
   */
  private chunkBuffer = new Uint8Array(0);
  private valueBuffers: NativeValues[] = [];
  private nextValueBuffer = 0;

  private constructor(
    readonly path: string,
    readonly metadata: FileMetaData,
    readonly layout: ColumnLayout,
    readonly size: number,
    private readonly handle: FileHandle,
    private readonly asyncBuffer: AsyncBuffer,
  ) {}

  /** Opens `path` and resolves `column`; errors name the file. */
  static async open(path: string, column: string): Promise<ParquetColumnFile> {
    let metadata: FileMetaData;
    let asyncBuffer: AsyncBuffer;
    try {
      asyncBuffer = await asyncBufferFromFile(path);
      metadata = await parquetMetadataAsync(asyncBuffer);
    } catch (err) {
      throw new Error(`${path}: not a readable parquet file (truncated or corrupt?): ${(err as Error).message}`);
    }
    let layout: ColumnLayout;
    try {
      layout = resolveColumn(metadata, column);
    } catch (err) {
      throw new Error(`${path}: ${(err as Error).message}`);
    }
    const handle = await open(path, 'r');
    return new ParquetColumnFile(path, metadata, layout, asyncBuffer.byteLength, handle, asyncBuffer);
  }

  get rowGroupCount(): number {
    return this.metadata.row_groups.length;
  }

  get rows(): number {
    return Number(this.metadata.num_rows);
  }

  rowsInGroup(group: number): number {
    return Number(this.metadata.row_groups[group].num_rows);
  }

  /**
   * Decodes row group `group`; `d`, if given, is enforced. Errors name the file and row group.
   * The returned values are valid until the second-next call (two alternating buffers).
   */
  async readRowGroup(group: number, d?: number): Promise<RowGroupData> {
    const firstRow = this.metadata.row_groups.slice(0, group).reduce((s, g) => s + Number(g.num_rows), 0);
    const rows = this.rowsInGroup(group);
    try {
      const meta = this.columnMeta(group);
      const compressedBytes = Number(meta.total_compressed_size);
      if (meta.encodings.every((e) => TYPED_ENCODINGS.has(e))) {
        const bytes = await this.readChunk(meta);
        try {
          const decoded = decodeChunkFast(bytes, meta, this.layout, { rows, d, firstRow }, (n) => this.valueBuffer(n));
          return { group, firstRow, ...decoded, decoder: 'typed', compressedBytes };
        } catch (err) {
          if (!(err instanceof UnsupportedLayoutError)) throw err;
        }
      }
      const decoded = await decodeRowGroupGeneric(this.asyncBuffer, this.metadata, this.layout, { firstRow, rows, d });
      return { group, firstRow, ...decoded, decoder: 'generic', compressedBytes };
    } catch (err) {
      const where = `${this.path}: row group ${group} of ${this.rowGroupCount} (rows ${firstRow}..${firstRow + rows - 1})`;
      throw new Error(`${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  /** The next of the two alternating value buffers, grown to at least n values. */
  private valueBuffer(n: number): NativeValues {
    const slot = this.nextValueBuffer;
    this.nextValueBuffer = 1 - slot;
    if ((this.valueBuffers[slot]?.length ?? -1) < n) this.valueBuffers[slot] = allocValues(this.layout.element, n);
    return this.valueBuffers[slot];
  }

  private columnMeta(group: number): ColumnMetaData {
    const chunk = this.metadata.row_groups[group].columns.find(
      (c) => c.meta_data && c.meta_data.path_in_schema.join('.') === this.layout.leafPath.join('.'),
    );
    if (!chunk?.meta_data) throw new Error(`no column chunk for ${this.layout.leafPath.join('.')}`);
    return chunk.meta_data;
  }

  /** The column chunk's bytes: dictionary page (if any) and data pages, one positioned read. */
  private async readChunk(meta: ColumnMetaData): Promise<Uint8Array> {
    const dataStart = Number(meta.data_page_offset);
    const dictStart = meta.dictionary_page_offset === undefined ? undefined : Number(meta.dictionary_page_offset);
    // some writers put 0 in dictionary_page_offset when there is none
    const start = dictStart !== undefined && dictStart > 0 && dictStart < dataStart ? dictStart : dataStart;
    const length = Number(meta.total_compressed_size);
    if (start < 4 || start + length > this.size) {
      throw new Error(`column chunk bytes ${start}..${start + length} lie outside the file (${this.size} bytes)`);
    }
    if (this.chunkBuffer.length < length) this.chunkBuffer = new Uint8Array(length);
    const bytes = this.chunkBuffer.subarray(0, length);
    const { bytesRead } = await this.handle.read(bytes, 0, length, start);
    if (bytesRead !== length) throw new Error(`short read: ${bytesRead} of ${length} bytes at ${start}`);
    return bytes;
  }
}
