/**
 * Typed-array decoder for one column chunk of a list-of-floats column: the hot path of ingest.
 *
 * Why not hyparquet's reader: it decodes every value into a JS number and assembles nested
 * JS arrays per row, ~5M values/s and ~1.5 GB per 8192x2048 row group. Here the
 * page headers are still parsed by hyparquet (parquetHeader, Thrift compact), but levels,
 * dictionary indices and values go straight into typed arrays: a float16 column is gathered
 * as 2-byte patterns from the dictionary into a Uint16Array, never as numbers.
 *
 * Covered: DATA_PAGE (v1) and DATA_PAGE_V2; value encodings PLAIN, PLAIN_DICTIONARY,
 * RLE_DICTIONARY, BYTE_STREAM_SPLIT; levels in RLE/bit-packed hybrid; any codec of decompress.ts. Anything else
 * raises UnsupportedLayoutError and the caller falls back to hyparquet's generic reader.
 */
import type { ColumnMetaData, PageHeader } from 'hyparquet';
import { parquetHeader } from 'hyparquet/src/column.js';
import type { ColumnLayout, ElementType } from './column-layout.js';
import { decompress } from './decompress.js';
import { CorruptPageError, bitWidth, decodeDictionaryGather, decodeHybrid } from './hybrid.js';
import { RowChecker, type EncodedLevels } from './row-checker.js';

/** Values as stored in the file: float16 as raw bits, float as float32, double as float64. */
export type NativeValues = Uint16Array | Float32Array | Float64Array;

export class UnsupportedLayoutError extends Error {}

export interface DecodedChunk {
  values: NativeValues;
  rows: number;
  d: number;
}

/** Scratch array for repetition levels, decoded only to locate a null in an error message. */
let repScratch = new Uint8Array(0);

/**
 * Decodes a whole column chunk (`bytes` = the chunk, from its first page header).
 * `rows` (the row group's row count) and `d` (if known) are checked; `firstRow` is only
 * used to number rows in error messages. `alloc(n)` gives the output array (>= n values of the
 * column's element type), so that callers can reuse buffers.
 */
export function decodeChunkFast(
  bytes: Uint8Array,
  meta: ColumnMetaData,
  layout: ColumnLayout,
  expect: { rows: number; d?: number; firstRow: number },
  alloc: (n: number) => NativeValues = (n) => allocValues(layout.element, n),
): DecodedChunk {
  const totalLevels = Number(meta.num_values);
  const values = alloc(totalLevels);
  const rowChecker = new RowChecker(layout.maxDef, expect.d, expect.firstRow);
  const reader = { view: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), offset: 0 };
  let dictionary: Dictionary | undefined;
  let levelsSeen = 0;
  let valuesSeen = 0;

  while (levelsSeen < totalLevels) {
    if (reader.offset >= bytes.length) {
      throw new CorruptPageError(`column chunk ends after ${levelsSeen} of ${totalLevels} values`);
    }
    const header = readHeader(reader);
    const start = reader.offset;
    const end = start + header.compressed_page_size;
    if (end > bytes.length) throw new CorruptPageError(`page at byte ${start} runs past the column chunk`);
    const body = bytes.subarray(start, end);
    reader.offset = end;

    if (header.type === 'DICTIONARY_PAGE') {
      const n = header.dictionary_page_header?.num_values ?? 0;
      const plain = decompress(body, meta.codec, header.uncompressed_page_size);
      dictionary = new Dictionary(readPlain(plain, 0, n, layout.element));
    } else if (header.type === 'DATA_PAGE' || header.type === 'DATA_PAGE_V2') {
      const page =
        header.type === 'DATA_PAGE' ? splitPageV1(body, header, meta, layout) : splitPageV2(body, header, meta, layout);
      if (!(page.n >= 0) || levelsSeen + page.n > totalLevels) {
        throw new CorruptPageError(`page of ${page.n} values overruns the column chunk's ${totalLevels}`);
      }
      rowChecker.checkEncoded(page.rep, page.def, page.n, () => decodeLevels(page.rep, page.n));
      decodeValues(page, layout.element, dictionary, values, valuesSeen);
      levelsSeen += page.n;
      valuesSeen += page.n;
    } // index pages and unknown page types carry no values: skipped
  }
  const { rows, d } = rowChecker.finish();
  if (rows !== expect.rows) {
    throw new CorruptPageError(`column chunk holds ${rows} rows, the row group says ${expect.rows}`);
  }
  return { values: values.subarray(0, valuesSeen), rows, d };
}

/** A page header, checked enough that a corrupt one cannot make the page loop misbehave. */
function readHeader(reader: { view: DataView; offset: number }): PageHeader {
  const at = reader.offset;
  let header: PageHeader;
  try {
    header = parquetHeader(reader);
  } catch (err) {
    throw new CorruptPageError(`unreadable page header at byte ${at}: ${(err as Error).message}`);
  }
  const sizes = [header.compressed_page_size, header.uncompressed_page_size];
  if (!header.type || !sizes.every((x) => Number.isInteger(x) && x >= 0)) {
    throw new CorruptPageError(`invalid page header at byte ${at}`);
  }
  const counts = {
    DICTIONARY_PAGE: header.dictionary_page_header?.num_values,
    DATA_PAGE: header.data_page_header?.num_values,
    DATA_PAGE_V2: header.data_page_header_v2?.num_values,
  } as Record<string, number | undefined>;
  if (header.type in counts && !(Number.isInteger(counts[header.type]) && counts[header.type]! >= 0)) {
    throw new CorruptPageError(`invalid ${header.type} header at byte ${at}`);
  }
  return header;
}

/** A data page: where its levels and values lie (values decompressed). */
interface ValueSection {
  n: number;
  rep: EncodedLevels;
  def: EncodedLevels;
  encoding: string;
  buf: Uint8Array;
  pos: number;
}

function splitPageV1(body: Uint8Array, header: PageHeader, meta: ColumnMetaData, layout: ColumnLayout): ValueSection {
  const h = header.data_page_header!;
  if (!h.encoding) throw new CorruptPageError('data page header without a value encoding');
  if (h.repetition_level_encoding !== 'RLE' || h.definition_level_encoding !== 'RLE') {
    throw new UnsupportedLayoutError(`level encodings ${h.repetition_level_encoding}/${h.definition_level_encoding}`);
  }
  const page = decompress(body, meta.codec, header.uncompressed_page_size);
  const rep = levelsV1(page, 0, bitWidth(layout.maxRep));
  const def = levelsV1(page, rep.end, bitWidth(layout.maxDef));
  return { n: h.num_values, rep, def, encoding: h.encoding, buf: page, pos: def.end };
}

/** v1 levels: a 4-byte little-endian length, then the hybrid-encoded levels (none if width 0). */
function levelsV1(page: Uint8Array, pos: number, width: number): EncodedLevels {
  if (width === 0) return { buf: page, start: pos, end: pos, width };
  if (pos + 4 > page.length) throw new CorruptPageError('levels length runs past the page');
  const len = page[pos] | (page[pos + 1] << 8) | (page[pos + 2] << 16) | (page[pos + 3] << 24);
  const start = pos + 4;
  if (len < 0 || start + len > page.length) throw new CorruptPageError(`levels length ${len} runs past the page`);
  return { buf: page, start, end: start + len, width };
}

/** v2: levels first, uncompressed, with their lengths in the header; then the (compressed) values. */
function splitPageV2(body: Uint8Array, header: PageHeader, meta: ColumnMetaData, layout: ColumnLayout): ValueSection {
  const h = header.data_page_header_v2!;
  const repLen = h.repetition_levels_byte_length;
  const defLen = h.definition_levels_byte_length;
  if (!h.encoding) throw new CorruptPageError('data page v2 header without a value encoding');
  if (
    !(
      Number.isInteger(repLen) &&
      Number.isInteger(defLen) &&
      repLen >= 0 &&
      defLen >= 0 &&
      repLen + defLen <= body.length
    )
  ) {
    throw new CorruptPageError(`data page v2 level lengths ${repLen}/${defLen} do not fit the page`);
  }
  const rep = { buf: body, start: 0, end: repLen, width: bitWidth(layout.maxRep) };
  const def = { buf: body, start: repLen, end: repLen + defLen, width: bitWidth(layout.maxDef) };
  const compressed = body.subarray(repLen + defLen);
  const size = header.uncompressed_page_size - repLen - defLen;
  const isCompressed = h.is_compressed !== false && size > 0;
  const buf = isCompressed ? decompress(compressed, meta.codec, size) : compressed;
  return { n: h.num_values, rep, def, encoding: h.encoding, buf, pos: 0 };
}

function decodeLevels(levels: EncodedLevels, n: number): Uint8Array {
  if (repScratch.length < n) repScratch = new Uint8Array(n);
  if (levels.width === 0) repScratch.fill(0, 0, n);
  else decodeHybrid(levels.buf, levels.start, levels.end, levels.width, repScratch, n);
  return repScratch;
}

/** Decodes `page.n` values (all non-null: the row checker has run) into out[at...]. */
function decodeValues(
  page: ValueSection,
  element: ElementType,
  dictionary: Dictionary | undefined,
  out: NativeValues,
  at: number,
): void {
  const { n, buf } = page;
  if (page.encoding === 'PLAIN') {
    out.set(readPlain(buf, page.pos, n, element), at);
  } else if (page.encoding === 'BYTE_STREAM_SPLIT') {
    unsplitBytes(buf, page.pos, n, out, at);
  } else if (page.encoding === 'RLE_DICTIONARY' || page.encoding === 'PLAIN_DICTIONARY') {
    if (!dictionary) throw new CorruptPageError('dictionary-encoded page without a dictionary page');
    if (page.pos >= buf.length) throw new CorruptPageError('dictionary-encoded page has no data');
    const width = buf[page.pos];
    const padded = dictionary.padded(width);
    const maxIndex = decodeDictionaryGather(buf, page.pos + 1, buf.length, width, padded, out, at, n);
    if (maxIndex >= dictionary.size) {
      throw new CorruptPageError(
        `dictionary index ${maxIndex} out of range (dictionary has ${dictionary.size} entries)`,
      );
    }
  } else {
    throw new UnsupportedLayoutError(`value encoding ${page.encoding}`);
  }
}

/**
 * BYTE_STREAM_SPLIT: byte k of every value is stored together, in stream k (n bytes each).
 * Reassembles each value from its bytes in the streams with 16/32-bit stores (out is aligned).
 */
function unsplitBytes(buf: Uint8Array, pos: number, n: number, out: NativeValues, at: number): void {
  const width = out.BYTES_PER_ELEMENT;
  if (pos + n * width > buf.length) {
    throw new CorruptPageError(
      `byte-stream-split page holds ${buf.length - pos} value bytes, ${n} values need ${n * width}`,
    );
  }
  const b = buf;
  const s0 = pos;
  const s1 = pos + n;
  if (width === 2) {
    const u = new Uint16Array(out.buffer, out.byteOffset + at * 2, n);
    for (let i = 0; i < n; i++) u[i] = b[s0 + i] | (b[s1 + i] << 8);
    return;
  }
  // 4 or 8 bytes: one or two 32-bit words per value, each from four streams.
  const words = width / 4;
  const u = new Uint32Array(out.buffer, out.byteOffset + at * width, n * words);
  for (let w = 0; w < words; w++) {
    const s = pos + 4 * w * n;
    for (let i = 0, o = w; i < n; i++, o += words) {
      u[o] = b[s + i] | (b[s + n + i] << 8) | (b[s + 2 * n + i] << 16) | (b[s + 3 * n + i] << 24);
    }
  }
}

/**
 * A dictionary page's values, padded with zeros to 2^width entries for the fused
 * decode-gather (which then never reads out of bounds; indices >= size are reported).
 */
class Dictionary {
  private paddedCache?: NativeValues;
  constructor(readonly values: NativeValues) {}
  get size(): number {
    return this.values.length;
  }
  padded(width: number): NativeValues {
    const length = Math.max(2 ** width, this.values.length);
    if (width > 24) throw new CorruptPageError(`dictionary index bit width ${width} > 24`);
    if (!this.paddedCache || this.paddedCache.length < length) {
      const padded = allocValues(elementOf(this.values), length);
      padded.set(this.values);
      this.paddedCache = padded;
    }
    return this.paddedCache;
  }
}

function elementOf(values: NativeValues): ElementType {
  return values instanceof Uint16Array ? 'float16' : values instanceof Float32Array ? 'float' : 'double';
}

const BYTES: Record<ElementType, number> = { float16: 2, float: 4, double: 8 };

/** PLAIN values (little-endian) as a typed array; a view when aligned, else a copy. */
function readPlain(buf: Uint8Array, pos: number, n: number, element: ElementType): NativeValues {
  const width = BYTES[element];
  if (pos + n * width > buf.length) {
    throw new CorruptPageError(`page holds ${buf.length - pos} value bytes, ${n} values need ${n * width}`);
  }
  let offset = buf.byteOffset + pos;
  let arrayBuffer = buf.buffer as ArrayBuffer;
  if (offset % width !== 0) {
    // copy explicitly: buf may be a node Buffer (zlib output), whose slice() does not copy
    const copy = new Uint8Array(n * width);
    copy.set(buf.subarray(pos, pos + n * width));
    arrayBuffer = copy.buffer;
    offset = 0;
  }
  if (element === 'float16') return new Uint16Array(arrayBuffer, offset, n);
  if (element === 'float') return new Float32Array(arrayBuffer, offset, n);
  return new Float64Array(arrayBuffer, offset, n);
}

export function allocValues(element: ElementType, n: number): NativeValues {
  if (element === 'float16') return new Uint16Array(n);
  if (element === 'float') return new Float32Array(n);
  return new Float64Array(n);
}
