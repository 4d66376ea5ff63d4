/**
 * Test fixtures written by an independent writer: apache-arrow builds the Arrow data, parquet-wasm
 * (arrow-rs) writes the parquet. Nothing here uses the project's own parquet code, so ingest is
 * checked against files it did not produce. Also a small schema/encoding dump (hyparquet
 * metadata) to assert that a fixture really has the layout a test claims.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as arrow from 'apache-arrow';
import * as pw from 'parquet-wasm';
import { parquetMetadata } from 'hyparquet';

export type Element = 'float16' | 'float' | 'double';
export type Codec = 'zstd' | 'snappy' | 'gzip' | 'none';

export interface FixtureOptions {
  element: Element;
  /** fixed_size_list<element>[d] (pyarrow's layout for the hub data) or list<element>. */
  fixedSize: boolean;
  compression: Codec;
  dictionary: boolean;
  rowGroupSize: number;
  /** Arrow-rs dictionary-encodes FIXED_LEN_BYTE_ARRAY only with writer version 2. */
  writerVersion?: 1 | 2;
  /** Value encoding when not dictionary-encoded (e.g. BYTE_STREAM_SPLIT). */
  encoding?: 'PLAIN' | 'BYTE_STREAM_SPLIT';
  column?: string;
}

/**
 * Writes rows (each a number[]; row lengths may differ for list<>, for tests of bad input) as
 * parquet. float16 values are given as float16 bit patterns (Uint16) in `halfBits`.
 */
export function writeFixture(
  path: string,
  rows: { values: ArrayLike<number>; lengths: number[] },
  opts: FixtureOptions,
): void {
  const total = rows.lengths.reduce((a, b) => a + b, 0);
  const elementType = { float16: new arrow.Float16(), float: new arrow.Float32(), double: new arrow.Float64() }[
    opts.element
  ];
  const TypedArray = { float16: Uint16Array, float: Float32Array, double: Float64Array }[opts.element];
  const data = TypedArray.from(Array.from({ length: total }, (_, i) => rows.values[i]));
  const child = arrow.makeData({ type: elementType, length: total, data } as any);
  const field = new arrow.Field('element', elementType, true);
  let list: arrow.Data; // (makeData's overloads do not type nested children well: casts below)
  if (opts.fixedSize) {
    const d = rows.lengths[0];
    list = arrow.makeData({
      type: new arrow.FixedSizeList(d, field),
      length: rows.lengths.length,
      nullCount: 0,
      child,
    } as any);
  } else {
    const offsets = new Int32Array(rows.lengths.length + 1);
    rows.lengths.forEach((len, i) => (offsets[i + 1] = offsets[i] + len));
    list = arrow.makeData({
      type: new arrow.List(field),
      length: rows.lengths.length,
      nullCount: 0,
      valueOffsets: offsets,
      child,
    } as any);
  }
  const table = new arrow.Table({ [opts.column ?? 'activations']: arrow.makeVector(list as any) });
  const codec = {
    zstd: pw.Compression.ZSTD,
    snappy: pw.Compression.SNAPPY,
    gzip: pw.Compression.GZIP,
    none: pw.Compression.UNCOMPRESSED,
  }[opts.compression];
  let builder = new pw.WriterPropertiesBuilder()
    .setCompression(codec)
    .setDictionaryEnabled(opts.dictionary)
    .setWriterVersion(opts.writerVersion === 2 ? pw.WriterVersion.V2 : pw.WriterVersion.V1)
    .setMaxRowGroupSize(opts.rowGroupSize)
    .setDataPageSizeLimit(4096); // several pages per row group, rows spanning pages
  if (opts.encoding === 'BYTE_STREAM_SPLIT') builder = builder.setEncoding(pw.Encoding.BYTE_STREAM_SPLIT);
  const bytes = pw.writeParquet(pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), builder.build());
  writeFileSync(path, bytes);
}

/** Regular rows: n rows of d values. */
export function regularRows(values: ArrayLike<number>, n: number, d: number) {
  return { values, lengths: new Array<number>(n).fill(d) };
}

export interface LayoutDump {
  schema: Array<{
    name: string;
    type?: string;
    type_length?: number;
    repetition?: string;
    logical?: string;
    converted?: string;
  }>;
  codec: string;
  rowGroupRows: number[];
  /** Distinct "PAGE_TYPE:ENCODING" pairs over all row groups (from encoding_stats). */
  pages: string[];
}

/** What a parquet file's footer says about its first column, as plain JSON. */
export function dumpLayout(path: string): LayoutDump {
  const buf = readFileSync(path);
  const md = parquetMetadata(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const pages = new Set<string>();
  for (const rg of md.row_groups) {
    for (const s of rg.columns[0].meta_data?.encoding_stats ?? []) pages.add(`${s.page_type}:${s.encoding}`);
  }
  return {
    schema: md.schema.slice(1).map((e) => ({
      name: e.name,
      ...(e.type && { type: e.type }),
      ...(e.type_length && { type_length: e.type_length }),
      ...(e.repetition_type && { repetition: e.repetition_type }),
      ...(e.logical_type && { logical: e.logical_type.type }),
      ...(e.converted_type && { converted: e.converted_type }),
    })),
    codec: md.row_groups[0].columns[0].meta_data!.codec,
    rowGroupRows: md.row_groups.map((g) => Number(g.num_rows)),
    pages: [...pages].sort(),
  };
}
