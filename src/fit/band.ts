/**
 * The law's value at a point and its percentile band over the bootstrap refits. fit-law
 * evaluates it for predict_at and the plotted curves; the report's prediction check evaluates
 * it later at the final run, from the public parameters fit.json carries (params,
 * bootstrap_params). One implementation, so the check's interval is fit-law's own.
 */
import type { Law } from './laws.js';
import { percentileInterval } from './stats.js';

export interface LawBand {
  /** The law with the fitted parameters. */
  y: number;
  /** Percentile interval of the law over the refits; null without a finite one. */
  interval: [number, number] | null;
}

/**
 * @param theta the fitted parameters, in the optimiser's coordinates (law.fromPublic of the published ones)
 * @param boot every bootstrap refit's parameters, likewise
 * @param point the law's own variables (chinchilla: N and the effective data D'; power laws: x)
 */
export function lawBand(
  law: Law,
  theta: ArrayLike<number>,
  boot: ArrayLike<number>[],
  point: number[],
  confidence: number,
): LawBand {
  const logPoint = point.map(Math.log);
  const at = (t: ArrayLike<number>) => Math.exp(law.logPredict(t, logPoint));
  return { y: at(theta), interval: percentileInterval(boot.map(at).filter(Number.isFinite), confidence) };
}

/**
 * Published parameters (fit.json's params, one entry of its bootstrap_params) in the optimiser's
 * coordinates. A parameter the fit drove out of range is null there: the law has no value then,
 * so every coordinate is NaN (and lawBand gives NaN, or leaves that refit out of the band).
 */
export function thetaOf(law: Law, params: Record<string, number | null>): Float64Array {
  const finite = law.paramNames.every((k) => typeof params[k] === 'number');
  return finite ? law.fromPublic(params as Record<string, number>) : new Float64Array(law.coords.length).fill(NaN);
}
