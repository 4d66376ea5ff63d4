/**
 * Small, fast, seeded pseudo-random numbers: xoshiro128** seeded through splitmix32.
 *
 * Why not Math.random: batches, permutations and synthetic data must be reproducible from a
 * seed, byte for byte, so that the cache's early cutoff and checkpoint restores work.
 * xoshiro128** is 32-bit (no BigInt), passes BigCrush, and costs a few ns a call in V8.
 */

/** splitmix32: turns any 32-bit seed (including 0) into well-mixed state words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** A spare normal deviate from the last Box-Muller pair. */
  private spare = NaN;

  /**
   * @param seed any integer (only its low 32 bits and `stream` matter)
   * @param stream an independent sub-stream id, so one user seed can feed several
   *   generators (dictionary, codes, noise, epoch permutations) without overlap.
   */
  constructor(seed: number, stream = 0) {
    const st = { s: (seed >>> 0) ^ Math.imul(stream >>> 0, 0x632be5ab) };
    // Mix the high bits of large seeds too (seeds up to 2^53 stay distinct).
    st.s ^= Math.floor(seed / 0x100000000) | 0;
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = splitmix32(st);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1; // all-zero state is a fixed point
  }

  /** Next 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  next(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform double in (0, 1): safe for log(). */
  nextOpen(): number {
    let u = this.next();
    while (u === 0) u = this.next();
    return u;
  }

  /** Uniform integer in [0, n), n <= 2^32; the bias of scaling a 53-bit double is below n / 2^53. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal deviate (Box-Muller, the second value of each pair kept for the next call). */
  normal(): number {
    if (!Number.isNaN(this.spare)) {
      const s = this.spare;
      this.spare = NaN;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.nextOpen()));
    const theta = 2 * Math.PI * this.next();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

/**
 * Adds std * N(0, 1) deviates to dst[0..n), in a tight Box-Muller loop on 32-bit uniforms
 * (noise does not need 53-bit ones): about twice as fast as calling normal() per value.
 */
export function addGaussian(rng: Rng, dst: Float32Array | Float64Array, n: number, std: number): void {
  const inv32 = 1 / 4294967296;
  for (let i = 0; i < n; i += 2) {
    const r = std * Math.sqrt(-2 * Math.log((rng.nextU32() + 0.5) * inv32));
    const theta = 2 * Math.PI * rng.nextU32() * inv32;
    dst[i] += r * Math.cos(theta);
    if (i + 1 < n) dst[i + 1] += r * Math.sin(theta);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/**
 * A Fisher-Yates permutation of 0..n-1 drawn from `rng`.
 * Int32Array: the row indices of a split fit in 31 bits (2^31 rows of d=2048 is 8 TB).
 */
export function permutation(n: number, rng: Rng): Int32Array {
  const p = new Int32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}
