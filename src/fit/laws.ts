/**
 * The three laws fit-law knows, written in log space as Chinchilla's Approach 3 does:
 * the model predicts log y, the residual is r = log(prediction) - log(y), and the
 * objective is sum_i w_i * loss(r_i) (w_i: bootstrap multiplicities, 1 for a plain fit).
 *
 * Sums of positive terms are parameterised through their logs and combined with a stable
 * log-sum-exp, so that A, B, E (or a, c) stay positive without constraints:
 *   power                y = a * x^b                 log y = la + b log x
 *   power_plus_constant  y = c + a * x^b             log y = LSE(la + b log x, lc)
 *   chinchilla           L = E + A/N^alpha + B/D^beta log L = LSE(a - alpha log N, b - beta log D, e)
 */
import type { Objective } from './lbfgs.js';

export type LawName = 'power' | 'power_plus_constant' | 'chinchilla';
export type LossKind = 'huber' | 'squared';

/** Points in log space: features[0] = log x (or log N), features[1] = log D. */
export interface LogData {
  features: Float64Array[];
  logY: Float64Array;
  weights: Float64Array;
}

export interface Law {
  name: LawName;
  formula: string;
  /** Coordinates the optimiser works in (logs of positive coefficients). */
  coords: string[];
  /** Published parameters, in report order. */
  paramNames: string[];
  nFeatures: number;
  /** Log of the prediction at one point given by its log features. */
  logPredict(theta: ArrayLike<number>, logFeatures: ArrayLike<number>): number;
  toPublic(theta: ArrayLike<number>): Record<string, number>;
  fromPublic(p: Record<string, number>): Float64Array;
  /** Objective and analytic gradient over the data. */
  objective(data: LogData, loss: LossFn): Objective;
}

/** A per-residual loss: value and derivative. */
export interface LossFn {
  value(r: number): number;
  deriv(r: number): number;
}

/** Huber loss with threshold delta (quadratic inside, linear outside), as scipy/optax define it. */
export function huberLoss(delta: number): LossFn {
  return {
    value: (r) => (Math.abs(r) <= delta ? 0.5 * r * r : delta * (Math.abs(r) - 0.5 * delta)),
    deriv: (r) => (Math.abs(r) <= delta ? r : delta * Math.sign(r)),
  };
}

export const squaredLoss: LossFn = { value: (r) => 0.5 * r * r, deriv: (r) => r };

export function lossFn(kind: LossKind, delta: number): LossFn {
  return kind === 'huber' ? huberLoss(delta) : squaredLoss;
}

const power: Law = {
  name: 'power',
  formula: 'y = a * x^b',
  coords: ['log_a', 'b'],
  paramNames: ['a', 'b'],
  nFeatures: 1,
  logPredict: (t, f) => t[0] + t[1] * f[0],
  toPublic: (t) => ({ a: Math.exp(t[0]), b: t[1] }),
  fromPublic: (p) => Float64Array.of(Math.log(p.a), p.b),
  objective: (data, loss) => (t, g) => {
    const lx = data.features[0];
    let f = 0;
    g.fill(0);
    for (let i = 0; i < data.logY.length; i++) {
      const w = data.weights[i];
      if (w === 0) continue;
      const r = t[0] + t[1] * lx[i] - data.logY[i];
      f += w * loss.value(r);
      const psi = w * loss.deriv(r);
      g[0] += psi;
      g[1] += psi * lx[i];
    }
    return f;
  },
};

const powerPlusConstant: Law = {
  name: 'power_plus_constant',
  formula: 'y = c + a * x^b',
  coords: ['log_a', 'b', 'log_c'],
  paramNames: ['a', 'b', 'c'],
  nFeatures: 1,
  logPredict: (t, f) => lse2(t[0] + t[1] * f[0], t[2]),
  toPublic: (t) => ({ a: Math.exp(t[0]), b: t[1], c: Math.exp(t[2]) }),
  fromPublic: (p) => Float64Array.of(Math.log(p.a), p.b, Math.log(p.c)),
  objective: (data, loss) => (t, g) => {
    const lx = data.features[0];
    let f = 0;
    g.fill(0);
    for (let i = 0; i < data.logY.length; i++) {
      const w = data.weights[i];
      if (w === 0) continue;
      const t1 = t[0] + t[1] * lx[i];
      const t2 = t[2];
      const m = Math.max(t1, t2);
      const e1 = Math.exp(t1 - m);
      const e2 = Math.exp(t2 - m);
      const s = e1 + e2;
      const r = m + Math.log(s) - data.logY[i];
      f += w * loss.value(r);
      const psi = w * loss.deriv(r);
      const w1 = e1 / s;
      g[0] += psi * w1;
      g[1] += psi * w1 * lx[i];
      g[2] += psi * (e2 / s);
    }
    return f;
  },
};

const chinchilla: Law = {
  name: 'chinchilla',
  formula: 'L = E + A / N^alpha + B / D^beta',
  coords: ['a', 'b', 'e', 'alpha', 'beta'],
  paramNames: ['E', 'A', 'B', 'alpha', 'beta'],
  nFeatures: 2,
  logPredict: (t, f) => lse3(t[0] - t[3] * f[0], t[1] - t[4] * f[1], t[2]),
  toPublic: (t) => ({ E: Math.exp(t[2]), A: Math.exp(t[0]), B: Math.exp(t[1]), alpha: t[3], beta: t[4] }),
  fromPublic: (p) => Float64Array.of(Math.log(p.A), Math.log(p.B), Math.log(p.E), p.alpha, p.beta),
  objective: (data, loss) => (t, g) => {
    const lN = data.features[0];
    const lD = data.features[1];
    const [a, b, e, alpha, beta] = [t[0], t[1], t[2], t[3], t[4]];
    let f = 0;
    let g0 = 0,
      g1 = 0,
      g2 = 0,
      g3 = 0,
      g4 = 0;
    for (let i = 0; i < data.logY.length; i++) {
      const w = data.weights[i];
      if (w === 0) continue;
      const t1 = a - alpha * lN[i];
      const t2 = b - beta * lD[i];
      // Stable log-sum-exp: the largest term contributes exp(0) = 1, saving one exp.
      let e1: number, e2: number, e3: number, m: number;
      if (t1 >= t2 && t1 >= e) {
        m = t1;
        e1 = 1;
        e2 = Math.exp(t2 - m);
        e3 = Math.exp(e - m);
      } else if (t2 >= e) {
        m = t2;
        e1 = Math.exp(t1 - m);
        e2 = 1;
        e3 = Math.exp(e - m);
      } else {
        m = e;
        e1 = Math.exp(t1 - m);
        e2 = Math.exp(t2 - m);
        e3 = 1;
      }
      const s = e1 + e2 + e3;
      const r = m + Math.log(s) - data.logY[i];
      f += w * loss.value(r);
      const psi = (w * loss.deriv(r)) / s;
      g0 += psi * e1;
      g1 += psi * e2;
      g2 += psi * e3;
      g3 -= psi * e1 * lN[i];
      g4 -= psi * e2 * lD[i];
    }
    g[0] = g0;
    g[1] = g1;
    g[2] = g2;
    g[3] = g3;
    g[4] = g4;
    return f;
  },
};

export const LAWS: Record<LawName, Law> = {
  power,
  power_plus_constant: powerPlusConstant,
  chinchilla,
};

function lse2(u: number, v: number): number {
  const m = Math.max(u, v);
  return m + Math.log(Math.exp(u - m) + Math.exp(v - m));
}

function lse3(u: number, v: number, w: number): number {
  const m = Math.max(u, v, w);
  return m + Math.log(Math.exp(u - m) + Math.exp(v - m) + Math.exp(w - m));
}

/**
 * Weighted least squares of log y on log x: the closed-form power-law fit
 * (with two points it is the exact line through them). Returns null when x has no spread.
 */
export function closedFormPower(logX: Float64Array, logY: Float64Array, weights: Float64Array): Float64Array | null {
  let sw = 0,
    sx = 0,
    sy = 0;
  for (let i = 0; i < logX.length; i++) {
    sw += weights[i];
    sx += weights[i] * logX[i];
    sy += weights[i] * logY[i];
  }
  const mx = sx / sw;
  const my = sy / sw;
  let sxx = 0,
    sxy = 0;
  for (let i = 0; i < logX.length; i++) {
    const dx = logX[i] - mx;
    sxx += weights[i] * dx * dx;
    sxy += weights[i] * dx * (logY[i] - my);
  }
  if (!(sxx > 1e-24 * Math.max(1, mx * mx) * sw)) return null;
  const b = sxy / sxx;
  return Float64Array.of(my - b * mx, b);
}
