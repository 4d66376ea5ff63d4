/**
 * IEEE 754 half precision <-> float32.
 *
 * Decoding uses a 65536-entry lookup table (256 KiB, built once): one indexed load per value,
 * which is what lets the loader deliver ~10^8 values/s on one core. Encoding rounds once to
 * nearest, ties to even, like numpy and pyarrow.
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

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer); // little-endian hosts only (the store is little-endian)

/**
 * Half-precision bits of a number, rounded once from its exact value (a double, or a float32
 * widened exactly) to the nearest half, ties to even: numpy's astype(float16). Rounding a
 * double through float32 first would round twice and differ near ties. Beyond the half range
 * (|x| >= 65520 after rounding) gives infinity; NaN gives a quiet NaN.
 */
export function encodeHalf(value: number): number {
  f64[0] = value;
  const hi = u32[1];
  const lo = u32[0];
  const sign = (hi >>> 16) & 0x8000;
  const exp = (hi >>> 20) & 0x7ff;
  if (exp === 0x7ff) return sign | 0x7c00 | ((hi & 0xfffff) | lo ? 0x200 : 0); // inf / NaN (quiet)
  const e = exp - 1023 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  // Subnormal half or zero: scaling by a power of two is exact (1024 is the smallest normal: correct).
  if (e <= 0) return sign | roundHalfEven(Math.abs(value) * 2 ** 24);
  const half = (e << 10) | ((hi >>> 10) & 0x3ff);
  // The 42 mantissa bits below the half's 10: their top 10 in hi, the rest in lo; 0x200 0 is the tie.
  const restHi = hi & 0x3ff;
  const up = restHi > 0x200 || (restHi === 0x200 && (lo !== 0 || (half & 1) === 1));
  return sign | (half + (up ? 1 : 0)); // a carry rounds up to the next exponent, or to inf: correct
}

/** Nearest integer, ties to even (x is exact and < 2^53). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const r = x - f;
  return r > 0.5 || (r === 0.5 && f % 2 === 1) ? f + 1 : f;
}

/** Encodes numbers (float32 or float64) into half-precision bits, each rounded once. */
export function floatToHalf(src: ArrayLike<number>, dst = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = encodeHalf(src[i]);
  return dst;
}

/** Decodes a whole array of half-precision bits. */
export function halvesToFloats(src: Uint16Array, dst = new Float32Array(src.length)): Float32Array {
  halfToFloat(src, 0, dst, 0, src.length);
  return dst;
}
