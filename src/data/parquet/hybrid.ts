/**
 * Parquet's RLE / bit-packed hybrid encoding, decoded straight into typed arrays.
 * Used for repetition and definition levels and for dictionary indices.
 *
 * hyparquet has a decoder too (readRleBitPackedHybrid), but it reads byte by byte through a
 * DataView; this one works on a Uint8Array with a bit accumulator, which matters because the
 * dictionary indices of the hot column are one entry per value (16M per row group).
 */

export type LevelArray = Uint8Array | Uint16Array | Uint32Array;

export class CorruptPageError extends Error {}

/**
 * Decodes `count` values of bit width `width` from buf[pos, end) into out[0, count).
 * Returns the position after the last byte consumed.
 */
export function decodeHybrid(
  buf: Uint8Array,
  pos: number,
  end: number,
  width: number,
  out: LevelArray,
  count: number,
): number {
  if (width > 32) throw new CorruptPageError(`bit width ${width} > 32`);
  const rleBytes = (width + 7) >>> 3;
  let n = 0;
  while (n < count) {
    if (pos >= end) throw new CorruptPageError(`RLE/bit-packed data ends after ${n} of ${count} values`);
    // ULEB128 run header
    let header = 0;
    let shift = 0;
    let byte: number;
    do {
      if (pos >= end) throw new CorruptPageError('RLE/bit-packed run header runs past the page');
      byte = buf[pos++];
      header += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);

    if (header % 2 === 1) {
      const groups = Math.floor(header / 2);
      const bytes = groups * width;
      if (pos + bytes > end) throw new CorruptPageError('bit-packed run runs past the page');
      const take = Math.min(groups * 8, count - n);
      unpackBits(buf, pos, width, out, n, take);
      n += take;
      pos += bytes;
    } else {
      const run = header / 2;
      if (pos + rleBytes > end) throw new CorruptPageError('RLE run runs past the page');
      let value = 0;
      for (let i = 0; i < rleBytes; i++) value += buf[pos + i] * 2 ** (8 * i);
      pos += rleBytes;
      const take = Math.min(run, count - n);
      out.fill(value, n, n + take);
      n += take;
    }
  }
  return pos;
}

/** Little-endian bit unpacking of `take` values of `width` bits starting at buf[pos]. */
function unpackBits(buf: Uint8Array, pos: number, width: number, out: LevelArray, at: number, take: number): void {
  if (width === 0) {
    out.fill(0, at, at + take);
    return;
  }
  if (width <= 24) {
    // the accumulator never holds more than width + 7 <= 31 bits: plain int32 arithmetic
    const mask = (1 << width) - 1;
    let acc = 0;
    let bits = 0;
    const stop = at + take;
    for (let i = at; i < stop; i++) {
      while (bits < width) {
        acc |= buf[pos++] << bits;
        bits += 8;
      }
      out[i] = acc & mask;
      acc >>>= width;
      bits -= width;
    }
    return;
  }
  // wide values (dictionaries of more than 16M entries): float arithmetic, rarely used
  let bitPos = pos * 8;
  for (let i = 0; i < take; i++) {
    let value = 0;
    for (let b = 0; b < width; b++, bitPos++) {
      if ((buf[bitPos >>> 3] >>> (bitPos & 7)) & 1) value += 2 ** b;
    }
    out[at + i] = value;
  }
}

/** Bits needed to store values 0..max. */
export function bitWidth(max: number): number {
  return max === 0 ? 0 : 32 - Math.clz32(max);
}

/**
 * Dictionary decoding fused with the gather: decodes `count` hybrid-encoded indices of bit
 * width `width` from buf[pos, end) and writes out[at + k] = dictionary[index] directly, without
 * an index array. `dictionary` must have at least 2^width entries (pad it), so no read goes out
 * of bounds; returns the largest index seen, which the caller checks against the real size.
 */
export function decodeDictionaryGather<T extends Uint16Array | Float32Array | Float64Array>(
  buf: Uint8Array,
  pos: number,
  end: number,
  width: number,
  dictionary: T,
  out: T,
  at: number,
  count: number,
): number {
  if (width > 24) throw new CorruptPageError(`dictionary index bit width ${width} > 24`);
  if (dictionary.length < 2 ** width) throw new Error('decodeDictionaryGather: dictionary not padded to 2^width');
  const rleBytes = (width + 7) >>> 3;
  const mask = (1 << width) - 1;
  const stop = at + count;
  let maxIndex = 0;
  let n = at;
  while (n < stop) {
    if (pos >= end) throw new CorruptPageError(`dictionary indices end after ${n - at} of ${count} values`);
    let header = 0;
    let shift = 0;
    let byte: number;
    do {
      if (pos >= end) throw new CorruptPageError('RLE/bit-packed run header runs past the page');
      byte = buf[pos++];
      header += (byte & 0x7f) * 2 ** shift;
      shift += 7;
    } while (byte & 0x80);

    if (header % 2 === 1) {
      const groups = Math.floor(header / 2);
      if (pos + groups * width > end) throw new CorruptPageError('bit-packed run runs past the page');
      const take = Math.min(groups * 8, stop - n);
      const runMax = width <= 16
        ? gatherPacked16(buf, pos, width, dictionary, out, n, n + take)
        : gatherPacked24(buf, pos, width, dictionary, out, n, n + take);
      if (runMax > maxIndex) maxIndex = runMax;
      n += take;
      pos += groups * width;
    } else {
      const run = header / 2;
      if (pos + rleBytes > end) throw new CorruptPageError('RLE run runs past the page');
      let j = 0;
      for (let i = 0; i < rleBytes; i++) j += buf[pos + i] * 2 ** (8 * i);
      pos += rleBytes;
      if (j > mask) throw new CorruptPageError(`RLE dictionary index ${j} wider than ${width} bits`);
      if (j > maxIndex) maxIndex = j;
      const take = Math.min(run, stop - n);
      out.fill(dictionary[j], n, n + take);
      n += take;
    }
  }
  return maxIndex;
}

/**
 * One bit-packed run, width <= 16: refills the accumulator 16 bits at a time (bits < width <= 16
 * before a refill, so it never holds more than 31 bits). May read one byte past the run, which
 * is harmless: those bits are never used (and reads past the array give undefined -> 0).
 */
function gatherPacked16<T extends Uint16Array | Float32Array | Float64Array>(
  buf: Uint8Array, pos: number, width: number, dictionary: T, out: T, from: number, to: number,
): number {
  const mask = (1 << width) - 1;
  let p = pos;
  let acc = 0;
  let bits = 0;
  let maxIndex = 0;
  for (let i = from; i < to; i++) {
    if (bits < width) {
      acc |= (buf[p] | (buf[p + 1] << 8)) << bits;
      p += 2;
      bits += 16;
    }
    const j = acc & mask;
    if (j > maxIndex) maxIndex = j;
    out[i] = dictionary[j];
    acc >>>= width;
    bits -= width;
  }
  return maxIndex;
}

/** One bit-packed run, 16 < width <= 24: byte-wise refill (accumulator <= width + 7 bits). */
function gatherPacked24<T extends Uint16Array | Float32Array | Float64Array>(
  buf: Uint8Array, pos: number, width: number, dictionary: T, out: T, from: number, to: number,
): number {
  const mask = (1 << width) - 1;
  let p = pos;
  let acc = 0;
  let bits = 0;
  let maxIndex = 0;
  for (let i = from; i < to; i++) {
    while (bits < width) {
      acc |= buf[p++] << bits;
      bits += 8;
    }
    const j = acc & mask;
    if (j > maxIndex) maxIndex = j;
    out[i] = dictionary[j];
    acc >>>= width;
    bits -= width;
  }
  return maxIndex;
}
