/** Seeded random numbers and percentiles for the bootstrap. */
import { mulberry32 } from '../random.js';

/** The same seed gives the same resamples (mulberry32, on its own stream). */
export function seededRandom(seed: number): () => number {
  return mulberry32((seed >>> 0) ^ 0x9e3779b9);
}

/** Multiplicities of a resample with replacement of n items (sum = n). */
export function resampleWeights(n: number, random: () => number): Float64Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[Math.floor(random() * n)]++;
  return w;
}

/** Linear-interpolation percentile (numpy's default), q in [0, 1]. */
export function quantile(values: number[], q: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const pos = q * (v.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, v.length - 1);
  return v[lo] + (pos - lo) * (v[hi] - v[lo]);
}

/**
 * The central percentile interval of the draws at `confidence` (0.95: the 2.5th and 97.5th
 * percentiles); null without draws.
 */
export function percentileInterval(values: number[], confidence: number): [number, number] | null {
  const tail = (1 - confidence) / 2;
  return values.length ? [quantile(values, tail), quantile(values, 1 - tail)] : null;
}
