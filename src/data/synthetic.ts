/**
 * Synthetic activations with a known ground truth, the pipeline's embedded default data source.
 *
 *   x = sum_i c_i f_i + b + noise
 *
 * - f_i: `nFeatures` random unit vectors in d dimensions (the ground-truth dictionary);
 * - c_i >= 0, sparse: feature i (rank i) is active in a row with probability p_i proportional to
 *   (i+1)^-zipfExponent, scaled so that sum_i p_i = meanActive (the expected L0; probabilities
 *   capped at 1 by water-filling); an active feature's magnitude is lognormal with mean 1
 *   (sigma 0.5: never near zero, so every firing is in principle recoverable);
 * - correlation rho: features are grouped `groupSize` at a time by rank (neighbours have similar
 *   frequencies); a group fires jointly with probability pi_g = rho * min_{j in g} p_j, and each
 *   member also fires on its own with q_j = (p_j - pi_g) / (1 - pi_g), so its marginal stays
 *   exactly p_j (the Zipf law is kept) while a fraction rho of the rarest member's firings are
 *   joint ones;
 * - b: a constant random direction of norm `biasNorm`; noise: i.i.d. N(0, noiseStd^2).
 *
 * Determinism: every feature and group has its own random stream, and the activations of a
 * feature are drawn as geometric gaps between the rows where it fires. So the rows produced do
 * not depend on how they are chunked (row groups, files): row r is the same whatever the
 * chunk size, and the same seed gives the same rows, bit for bit. Cost per row is
 * O(L0 * d + d) (noise), not O(nFeatures).
 */
import { Rng, addGaussian } from './loader/rng.js';

export interface SyntheticSpec {
  d: number;
  nFeatures: number;
  meanActive: number;
  zipfExponent: number;
  correlation: number;
  groupSize: number;
  noiseStd: number;
  biasNorm: number;
  seed: number;
}

/** Random stream ids: one per purpose, features and groups after these. */
const STREAM_DICTIONARY = 1;
const STREAM_NOISE = 2;
const STREAM_BIAS = 3;
const STREAM_FEATURES = 1000;
const MAGNITUDE_SIGMA = 0.5;
/** Accumulator values per block of rows (1 MiB of float64). */
const BLOCK_VALUES = 1 << 17;

/** p_i proportional to (i+1)^-alpha with sum meanActive and every p_i <= 1 (water-filling). */
export function zipfFrequencies(nFeatures: number, meanActive: number, alpha: number): Float64Array {
  if (!(meanActive > 0) || meanActive > nFeatures) {
    throw new Error(`synthetic: mean_active must be in (0, n_features=${nFeatures}], got ${meanActive}`);
  }
  const raw = Float64Array.from({ length: nFeatures }, (_, i) => (i + 1) ** -alpha);
  const p = new Float64Array(nFeatures);
  // The top-ranked features saturate first: cap the first k at 1 and scale the rest to fill.
  for (let capped = 0; capped <= nFeatures; capped++) {
    let rest = 0;
    for (let i = capped; i < nFeatures; i++) rest += raw[i];
    const c = (meanActive - capped) / rest;
    if (capped === nFeatures || c * raw[capped] <= 1) {
      for (let i = 0; i < nFeatures; i++) p[i] = i < capped ? 1 : Math.min(1, c * raw[i]);
      return p;
    }
  }
  return p;
}

/** The ground-truth dictionary: nFeatures x d float32, each row a random unit vector. */
export function makeDictionary(spec: Pick<SyntheticSpec, 'd' | 'nFeatures' | 'seed'>): Float32Array {
  const { d, nFeatures } = spec;
  const rng = new Rng(spec.seed, STREAM_DICTIONARY);
  const out = new Float32Array(nFeatures * d);
  const v = new Float64Array(d);
  for (let f = 0; f < nFeatures; f++) {
    let sq = 0;
    for (let i = 0; i < d; i++) {
      v[i] = rng.normal();
      sq += v[i] * v[i];
    }
    const inv = 1 / Math.sqrt(sq);
    for (let i = 0; i < d; i++) out[f * d + i] = v[i] * inv;
  }
  return out;
}

/** The constant bias vector (zeros when biasNorm is 0). */
function makeBias(spec: SyntheticSpec): Float64Array {
  const b = new Float64Array(spec.d);
  if (spec.biasNorm === 0) return b;
  const rng = new Rng(spec.seed, STREAM_BIAS);
  let sq = 0;
  for (let i = 0; i < spec.d; i++) {
    b[i] = rng.normal();
    sq += b[i] * b[i];
  }
  const k = spec.biasNorm / Math.sqrt(sq);
  for (let i = 0; i < spec.d; i++) b[i] *= k;
  return b;
}

/** A Bernoulli(q) process over rows, drawn as geometric gaps: the next row where it fires. */
class FiringProcess {
  next: number;
  private readonly logFail: number;

  constructor(
    readonly rng: Rng,
    q: number,
  ) {
    this.logFail = q >= 1 ? -Infinity : Math.log1p(-q);
    this.next = this.gap();
  }

  advance(): void {
    this.next += 1 + this.gap();
  }

  /** Failures before the next success: floor(log U / log(1-q)); q=0 never fires. */
  private gap(): number {
    if (this.logFail === 0) return Infinity;
    if (this.logFail === -Infinity) return 0;
    return Math.floor(Math.log(this.rng.nextOpen()) / this.logFail);
  }
}

export class SyntheticGenerator {
  readonly spec: SyntheticSpec;
  /** Marginal activation probability of each feature (the ground-truth frequencies). */
  readonly frequencies: Float64Array;
  readonly dictionary: Float32Array;
  /** Rows generated so far, and how often each feature fired in them. */
  rowsDone = 0;
  readonly activeCounts: Float64Array;
  private readonly bias: Float64Array;
  private readonly noise: Rng;
  private readonly own: FiringProcess[];
  private readonly joint: FiringProcess[];

  constructor(spec: SyntheticSpec) {
    validateSpec(spec);
    this.spec = spec;
    const { nFeatures, groupSize, correlation } = spec;
    this.frequencies = zipfFrequencies(nFeatures, spec.meanActive, spec.zipfExponent);
    this.dictionary = makeDictionary(spec);
    this.bias = makeBias(spec);
    this.noise = new Rng(spec.seed, STREAM_NOISE);
    this.activeCounts = new Float64Array(nFeatures);
    const groups = Math.ceil(nFeatures / groupSize);
    this.joint = [];
    this.own = [];
    for (let g = 0; g < groups; g++) {
      const members = this.members(g);
      let pMin = 1;
      for (let j = members.start; j < members.end; j++) pMin = Math.min(pMin, this.frequencies[j]);
      const pi = correlation * pMin;
      this.joint.push(new FiringProcess(new Rng(spec.seed, STREAM_FEATURES + nFeatures + g), pi));
      for (let j = members.start; j < members.end; j++) {
        const q = pi >= 1 ? 0 : (this.frequencies[j] - pi) / (1 - pi);
        this.own.push(new FiringProcess(new Rng(spec.seed, STREAM_FEATURES + j), q));
      }
    }
  }

  /** The next `n` rows, row-major float32 (n * d values). */
  nextRows(n: number): Float32Array {
    const { d } = this.spec;
    const out = new Float32Array(n * d);
    // Features are visited one after another, each touching scattered rows: blocks of rows whose
    // accumulator stays in cache (~1 MB) make that 5-10x faster than one pass over a large chunk.
    const block = Math.max(64, Math.floor(BLOCK_VALUES / d));
    for (let r = 0; r < n; r += block) this.block(Math.min(block, n - r), out, r * d);
    return out;
  }

  private block(n: number, out: Float32Array, outOffset: number): void {
    const { d, noiseStd } = this.spec;
    const acc = new Float64Array(n * d);
    const r0 = this.rowsDone;
    const r1 = r0 + n;
    const jointRows: number[] = [];
    for (let g = 0; g < this.joint.length; g++) {
      jointRows.length = 0;
      const jp = this.joint[g];
      for (; jp.next < r1; jp.advance()) jointRows.push(jp.next);
      const { start, end } = this.members(g);
      for (let j = start; j < end; j++) this.fireFeature(j, jointRows, r0, r1, acc);
    }
    if (noiseStd > 0) addGaussian(this.noise, acc, n * d, noiseStd);
    for (let r = 0; r < n; r++) {
      for (let i = 0; i < d; i++) out[outOffset + r * d + i] = acc[r * d + i] + this.bias[i];
    }
    this.rowsDone = r1;
  }

  /** Feature j fires in the union of its own rows and its group's joint rows within [r0, r1). */
  private fireFeature(j: number, jointRows: number[], r0: number, r1: number, acc: Float64Array): void {
    const own = this.own[j];
    const rng = own.rng;
    const { d } = this.spec;
    const f = this.dictionary.subarray(j * d, (j + 1) * d);
    let k = 0;
    for (;;) {
      const ownRow = own.next < r1 ? own.next : Infinity;
      const jointRow = k < jointRows.length ? jointRows[k] : Infinity;
      const row = Math.min(ownRow, jointRow);
      if (row === Infinity) return;
      if (row === ownRow) own.advance();
      if (row === jointRow) k++;
      // Lognormal magnitude with mean 1: exp(sigma z - sigma^2 / 2).
      const c = Math.exp(MAGNITUDE_SIGMA * rng.normal() - (MAGNITUDE_SIGMA * MAGNITUDE_SIGMA) / 2);
      // `row` may come out of Math.min as a double: an int32 base keeps the loop on fast element access.
      const base = ((row - r0) * d) | 0;
      for (let i = 0; i < d; i++) acc[base + i] += c * f[i];
      this.activeCounts[j]++;
    }
  }

  private members(g: number): { start: number; end: number } {
    const start = g * this.spec.groupSize;
    return { start, end: Math.min(this.spec.nFeatures, start + this.spec.groupSize) };
  }
}

function validateSpec(s: SyntheticSpec): void {
  const bad = (field: string, why: string, v: unknown) => {
    throw new Error(`synthetic: ${field} ${why}, got ${v}`);
  };
  if (!Number.isInteger(s.d) || s.d <= 0) bad('d', 'must be a positive integer', s.d);
  if (!Number.isInteger(s.nFeatures) || s.nFeatures <= 0) bad('n_features', 'must be a positive integer', s.nFeatures);
  if (!(s.correlation >= 0 && s.correlation <= 1)) bad('correlation', 'must be in [0, 1]', s.correlation);
  if (!Number.isInteger(s.groupSize) || s.groupSize <= 0) bad('group_size', 'must be a positive integer', s.groupSize);
  if (!(s.noiseStd >= 0)) bad('noise_std', 'must be >= 0', s.noiseStd);
  if (!(s.biasNorm >= 0)) bad('bias_norm', 'must be >= 0', s.biasNorm);
  if (!(s.zipfExponent >= 0)) bad('zipf_exponent', 'must be >= 0', s.zipfExponent);
}
