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
