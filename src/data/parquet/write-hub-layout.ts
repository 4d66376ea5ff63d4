/**
 * Writes parquet files in the layout of the hub dataset `mech-interp-uam/llama-mlp8-outputs`:
 * one column `activations` of `fixed_size_list<halffloat>[d]`, i.e. a 3-level LIST of
 * FIXED_LEN_BYTE_ARRAY(2) with the FLOAT16 logical type, dictionary-encoded (RLE_DICTIONARY
 * data pages + a PLAIN dictionary page), zstd, row groups of 8192 rows.
 *
 * The writing is done by parquet-wasm (arrow-rs) from Arrow IPC built by apache-arrow, so
 * the files come from an independent, widely used writer rather than from our reader's
 * author. One known difference from pyarrow: arrow-rs dictionary-encodes FIXED_LEN_BYTE_ARRAY
 * only with writer version 2.0, which also makes its data pages DATA_PAGE_V2 (pyarrow
 * writes DATA_PAGE v1 by default). The ingest reader handles both page versions.
 *
 * Memory stays bounded by one row group: rows are handed to the writer one row group per
 * record batch through transformParquetStream, and the serialized bytes are streamed to disk.
 */
import { open, rename, rm } from 'node:fs/promises';
import { floatToHalf } from '../float16.js';

export interface HubLayoutOptions {
  /** Column name; default 'activations'. */
  column?: string;
  /** Rows per row group; default 8192. */
  rowGroupSize?: number;
  /** Page compression; default 'zstd'. */
  compression?: 'zstd' | 'snappy' | 'gzip' | 'none';
  /** Dictionary encoding (RLE_DICTIONARY pages + a PLAIN dictionary page); default true. */
  dictionary?: boolean;
}

export interface HubLayoutResult {
  rows: number;
  rowGroups: number;
  bytes: number;
}

type RowChunk = Float32Array | Uint16Array;

/** Writes all `rows` (row-major, `rows.length / d` rows) to `path`. */
export async function writeHubLayoutParquet(
  path: string,
  rows: RowChunk,
  d: number,
  opts: HubLayoutOptions = {},
): Promise<HubLayoutResult> {
  return writeHubLayoutParquetStream(path, [rows], d, opts);
}

/**
 * Writes row-major chunks (each a whole number of rows; Float32Array values are rounded to
 * float16, Uint16Array is taken as float16 bits) to `path`, streaming. The file appears at
 * `path` only when complete (written to `path.tmp`, then renamed).
 */
export async function writeHubLayoutParquetStream(
  path: string,
  chunks: Iterable<RowChunk> | AsyncIterable<RowChunk>,
  d: number,
  opts: HubLayoutOptions = {},
): Promise<HubLayoutResult> {
  if (!Number.isInteger(d) || d <= 0) throw new Error(`writeHubLayoutParquet: d must be a positive integer, got ${d}`);
  const rowGroupSize = opts.rowGroupSize ?? 8192;
  const column = opts.column ?? 'activations';
  const arrow = await import('apache-arrow');
  const pw = await import('parquet-wasm');

  const groups = rowGroupsOf(chunks, d, rowGroupSize);
  let rows = 0;
  let rowGroups = 0;
  const batchStream = new ReadableStream({
    async pull(controller) {
      const next = await groups.next();
      if (next.done) return controller.close();
      rows += next.value.length / d;
      rowGroups++;
      controller.enqueue(recordBatchOf(arrow, pw, column, next.value, d));
    },
  });

  const props = writerProperties(pw, opts, rowGroupSize);
  const parquetStream = await pw.transformParquetStream(batchStream, props);
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w');
  let bytes = 0;
  try {
    const reader = parquetStream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      await handle.write(value);
      bytes += value.byteLength;
    }
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => {});
    await rm(tmp, { force: true });
    throw err;
  }
  await rename(tmp, path);
  return { rows, rowGroups, bytes };
}

/** Re-chunks arbitrary whole-row chunks into float16 row groups of exactly `size` rows (last may be shorter). */
async function* rowGroupsOf(
  chunks: Iterable<RowChunk> | AsyncIterable<RowChunk>,
  d: number,
  size: number,
): AsyncGenerator<Uint16Array> {
  const groupValues = size * d;
  let group = new Uint16Array(groupValues);
  let filled = 0;
  for await (const chunk of chunks) {
    if (chunk.length % d !== 0) {
      throw new Error(`writeHubLayoutParquet: chunk of ${chunk.length} values is not a whole number of rows of d=${d}`);
    }
    const half = chunk instanceof Uint16Array ? chunk : floatToHalf(chunk);
    let offset = 0;
    while (offset < half.length) {
      const take = Math.min(groupValues - filled, half.length - offset);
      group.set(half.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === groupValues) {
        yield group;
        group = new Uint16Array(groupValues);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield group.subarray(0, filled);
}

/** One row group as a parquet-wasm RecordBatch, via Arrow IPC built with apache-arrow. */
function recordBatchOf(
  arrow: typeof import('apache-arrow'),
  pw: typeof import('parquet-wasm'),
  column: string,
  values: Uint16Array,
  d: number,
) {
  const rows = values.length / d;
  const elementType = new arrow.Float16();
  const listType = new arrow.FixedSizeList(d, new arrow.Field('element', elementType, true));
  const child = arrow.makeData({ type: elementType, length: values.length, data: values });
  const list = arrow.makeData({ type: listType, length: rows, nullCount: 0, child });
  const table = new arrow.Table({ [column]: arrow.makeVector(list) });
  const wasmTable = pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream'));
  const batch = wasmTable.recordBatch(0);
  if (!batch) throw new Error('writeHubLayoutParquet: parquet-wasm returned no record batch');
  return batch;
}

function writerProperties(pw: typeof import('parquet-wasm'), opts: HubLayoutOptions, rowGroupSize: number) {
  const codec = {
    zstd: pw.Compression.ZSTD,
    snappy: pw.Compression.SNAPPY,
    gzip: pw.Compression.GZIP,
    none: pw.Compression.UNCOMPRESSED,
  }[opts.compression ?? 'zstd'];
  return (
    new pw.WriterPropertiesBuilder()
      .setCompression(codec)
      .setDictionaryEnabled(opts.dictionary ?? true)
      // arrow-rs only dictionary-encodes FIXED_LEN_BYTE_ARRAY with writer version 2.0
      .setWriterVersion(pw.WriterVersion.V2)
      .setMaxRowGroupSize(rowGroupSize)
      .setCreatedBy('sae-pipeline writeHubLayoutParquet (parquet-wasm)')
      .build()
  );
}
