/**
 * IEEE 754 half precision <-> float32.
 *
 * Decoding uses a 65536-entry lookup table (256 KiB, built once): one indexed load per value,
 * which is what lets the loader deliver ~10^8 values/s on one core. Encoding (used to write
 * synthetic data and test stores) rounds to nearest, ties to even, like numpy and pyarrow.
 */

let table: Float32Array | undefined;

/** The decoding table: entry h is the float32 value of the half-precision bits h. */
export function float16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) table[h] = decodeHalf(h);
  }
  return table;
}

/** Exact value of one half-precision bit pattern (subnormals, infinities and NaN included). */
export function decodeHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero and subnormals
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * Converts `count` half-precision values starting at src[srcOffset] into dst[dstOffset..],
 * multiplied by `scale` (skipped when 1, so the common path is a pure table lookup).
 */
export function halfToFloat(
  src: Uint16Array,
  srcOffset: number,
  dst: Float32Array,
  dstOffset: number,
  count: number,
  scale = 1,
): void {
  const t = float16Table();
  if (scale === 1) {
    for (let i = 0; i < count; i++) dst[dstOffset + i] = t[src[srcOffset + i]];
  } else {
    for (let i = 0; i < count; i++) dst[dstOffset + i] = t[src[srcOffset + i]] * scale;
  }
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Half-precision bits of a number (rounded to float32 first, then to nearest-even half). */
export function encodeHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN (quiet)
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // Subnormal half (or zero): shift the mantissa (with its implicit 1) into place.
    if (e < -10) return sign; // below half of the smallest subnormal -> signed zero
    mant |= 0x800000;
    const shift = 14 - e; // 13 + (1 - e)
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const up = rem > mid || (rem === mid && (half & 1) === 1);
    return sign | (half + (up ? 1 : 0)); // a carry into the exponent field is correct
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  const up = rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1);
  return sign | (half + (up ? 1 : 0)); // carry may round up to the next exponent / inf: correct
}

/** Encodes a float32 array into half-precision bits. */
export function floatToHalf(src: ArrayLike<number>, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = encodeHalf(src[i]);
  return dst;
}

/** Decodes a whole array of half-precision bits. */
export function halvesToFloats(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  halfToFloat(src, 0, dst, 0, src.length);
  return dst;
}
