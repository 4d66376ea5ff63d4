/**
 * A small L-BFGS minimiser (Nocedal & Wright, "Numerical Optimization", 2nd ed.,
 * Algorithm 7.4 for the two-loop recursion, Algorithms 3.5/3.6 for the strong-Wolfe
 * line search). The laws we fit have 2 to 5 parameters and analytic gradients, so a
 * dependency-free implementation is short and lets us report exactly why a run stopped.
 */

/** Returns f(x) and writes the gradient into `grad`. */
export type Objective = (x: Float64Array, grad: Float64Array) => number;

export interface LbfgsOptions {
  /** Number of (s, y) pairs kept. */
  memory?: number;
  maxIterations?: number;
  /** Stop when the largest gradient component is below this. */
  gradTol?: number;
  /** Stop when an iteration lowers f by less than relTol * max(|f|, tiny). */
  relTol?: number;
  /** Successive iterations below relTol needed to stop (guards against one short step). */
  patience?: number;
  /** When no step lowers f any more, the run counts as converged if the gradient is below this. */
  stallGradTol?: number;
}

export interface LbfgsResult {
  x: Float64Array;
  f: number;
  gradMax: number;
  iterations: number;
  evaluations: number;
  converged: boolean;
  /** Why it stopped: 'gradient', 'function', 'max-iterations', 'line-search', 'non-finite'. */
  reason: string;
}

const C1 = 1e-4; // sufficient decrease (Armijo)
const C2 = 0.9; // curvature: 0.9 is the usual choice for quasi-Newton directions

export function minimizeLbfgs(fn: Objective, x0: ArrayLike<number>, opts: LbfgsOptions = {}): LbfgsResult {
  const m = opts.memory ?? 10;
  const maxIter = opts.maxIterations ?? 1000;
  const gradTol = opts.gradTol ?? 1e-10;
  const relTol = opts.relTol ?? 1e-13;
  const patience = opts.patience ?? 3;
  const stallGradTol = opts.stallGradTol ?? 1e-6;
  const n = x0.length;

  let x: Float64Array = Float64Array.from(x0);
  let g: Float64Array = new Float64Array(n);
  let evaluations = 1;
  let f = fn(x, g);
  if (!Number.isFinite(f)) return done(x, f, g, 0, evaluations, false, 'non-finite');

  const sHist: Float64Array[] = [];
  const yHist: Float64Array[] = [];
  const rhoHist: number[] = [];
  const d = new Float64Array(n);
  let quiet = 0;

  for (let iter = 0; iter < maxIter; iter++) {
    if (maxAbs(g) <= gradTol) return done(x, f, g, iter, evaluations, true, 'gradient');
    searchDirection(g, sHist, yHist, rhoHist, d);
    let slope = dot(g, d);
    if (!(slope < 0)) {
      // The quasi-Newton model went bad (rounding): restart from steepest descent.
      sHist.length = yHist.length = rhoHist.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i];
      slope = dot(g, d);
    }
    const step0 = sHist.length === 0 ? Math.min(1, 1 / Math.sqrt(-slope)) : 1;
    let ls = strongWolfe(fn, x, f, d, slope, step0);
    evaluations += ls.evaluations;
    if (!ls.ok && sHist.length > 0) {
      // The curvature pairs can mislead near the kinks of a Huber loss: forget them and
      // retry along steepest descent before giving up.
      sHist.length = yHist.length = rhoHist.length = 0;
      for (let i = 0; i < n; i++) d[i] = -g[i];
      const sd = dot(g, d);
      ls = strongWolfe(fn, x, f, d, sd, Math.min(1, 1 / Math.sqrt(-sd)));
      evaluations += ls.evaluations;
    }
    if (!ls.ok) {
      // No step lowers f even along -g: we sit at the floating-point resolution of a
      // minimum (converged if the gradient is small) or on a plateau / wall (not converged).
      const converged = maxAbs(g) <= stallGradTol;
      return done(x, f, g, iter, evaluations, converged, 'line-search');
    }
    const s = new Float64Array(n);
    const y = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      s[i] = ls.x[i] - x[i];
      y[i] = ls.g[i] - g[i];
    }
    const decrease = f - ls.f;
    x = ls.x;
    g = ls.g;
    const fPrev = f;
    f = ls.f;
    const sy = dot(s, y);
    if (sy > 1e-12 * Math.sqrt(dot(y, y) * dot(s, s))) {
      sHist.push(s);
      yHist.push(y);
      rhoHist.push(1 / sy);
      if (sHist.length > m) {
        sHist.shift();
        yHist.shift();
        rhoHist.shift();
      }
    }
    quiet = decrease <= relTol * Math.max(Math.abs(fPrev), 1e-300) ? quiet + 1 : 0;
    if (quiet >= patience) return done(x, f, g, iter + 1, evaluations, true, 'function');
  }
  return done(x, f, g, maxIter, evaluations, false, 'max-iterations');
}

function done(
  x: Float64Array,
  f: number,
  g: Float64Array,
  iterations: number,
  evaluations: number,
  converged: boolean,
  reason: string,
): LbfgsResult {
  return { x, f, gradMax: maxAbs(g), iterations, evaluations, converged, reason };
}

/** Two-loop recursion: d = -H g, with H0 = gamma I scaled by the newest pair. */
function searchDirection(
  g: Float64Array,
  sHist: Float64Array[],
  yHist: Float64Array[],
  rho: number[],
  d: Float64Array,
): void {
  const n = g.length;
  const k = sHist.length;
  const alpha = new Array<number>(k);
  for (let i = 0; i < n; i++) d[i] = -g[i];
  for (let j = k - 1; j >= 0; j--) {
    alpha[j] = rho[j] * dot(sHist[j], d);
    axpy(-alpha[j], yHist[j], d);
  }
  if (k > 0) {
    const gamma = dot(sHist[k - 1], yHist[k - 1]) / dot(yHist[k - 1], yHist[k - 1]);
    for (let i = 0; i < n; i++) d[i] *= gamma;
  }
  for (let j = 0; j < k; j++) {
    const beta = rho[j] * dot(yHist[j], d);
    axpy(alpha[j] - beta, sHist[j], d);
  }
}

interface LineSearchResult {
  ok: boolean;
  x: Float64Array;
  f: number;
  g: Float64Array;
  evaluations: number;
}

/** Strong-Wolfe line search along d from x (f0 = f(x), slope0 = g(x).d < 0). */
function strongWolfe(
  fn: Objective,
  x: Float64Array,
  f0: number,
  d: Float64Array,
  slope0: number,
  step0: number,
): LineSearchResult {
  const n = x.length;
  let evaluations = 0;
  interface Probe {
    t: number;
    x: Float64Array;
    f: number;
    g: Float64Array;
    slope: number;
  }
  const probe = (t: number): Probe => {
    const xt = new Float64Array(n);
    for (let i = 0; i < n; i++) xt[i] = x[i] + t * d[i];
    const gt = new Float64Array(n);
    evaluations++;
    let ft = fn(xt, gt);
    if (!Number.isFinite(ft)) ft = Infinity;
    return { t, x: xt, f: ft, g: gt, slope: Number.isFinite(ft) ? dot(gt, d) : NaN };
  };
  const accept = (p: Probe): LineSearchResult => ({ ok: true, x: p.x, f: p.f, g: p.g, evaluations });
  const fail = (): LineSearchResult => ({ ok: false, x, f: f0, g: new Float64Array(n), evaluations });
  const armijo = (p: Probe) => p.f <= f0 + C1 * p.t * slope0;
  const curvature = (p: Probe) => Math.abs(p.slope) <= -C2 * slope0;

  const zoom = (lo: Probe, hi: Probe): LineSearchResult => {
    for (let k = 0; k < 30; k++) {
      const t = interpolate(lo, hi);
      if (Math.abs(hi.t - lo.t) < 1e-16 * Math.max(1, Math.abs(lo.t))) break;
      const p = probe(t);
      if (!armijo(p) || p.f >= lo.f) {
        hi = p;
      } else {
        if (curvature(p)) return accept(p);
        if (p.slope * (hi.t - lo.t) >= 0) hi = lo;
        lo = p;
      }
    }
    // Interval collapsed: accept the best point seen if it lowers f (Armijo holds for lo).
    return lo.t > 0 && lo.f < f0 ? accept(lo) : fail();
  };

  let prev: Probe = { t: 0, x, f: f0, g: new Float64Array(n), slope: slope0 };
  let t = step0;
  for (let i = 0; i < 40; i++) {
    const p = probe(t);
    if (!armijo(p) || (i > 0 && p.f >= prev.f)) return zoom(prev, p);
    if (curvature(p)) return accept(p);
    if (p.slope >= 0) return zoom(p, prev);
    prev = p;
    t *= 2;
  }
  return prev.t > 0 ? accept(prev) : fail();
}

/**
 * Minimiser of the cubic through (lo.t, lo.f, lo.slope) and (hi.t, hi.f, hi.slope),
 * kept inside the middle 80% of the bracket; bisection when the cubic is unusable
 * (an infinite value, or no real minimiser).
 */
function interpolate(lo: { t: number; f: number; slope: number }, hi: { t: number; f: number; slope: number }): number {
  const a = Math.min(lo.t, hi.t);
  const b = Math.max(lo.t, hi.t);
  const mid = 0.5 * (lo.t + hi.t);
  if (!Number.isFinite(hi.f) || !Number.isFinite(hi.slope) || !Number.isFinite(lo.slope)) {
    // Overflow past the bracket's end: shrink towards lo fast rather than bisect.
    return lo.t + 0.1 * (hi.t - lo.t);
  }
  const d1 = lo.slope + hi.slope - (3 * (lo.f - hi.f)) / (lo.t - hi.t);
  const disc = d1 * d1 - lo.slope * hi.slope;
  if (!(disc >= 0)) return mid;
  const d2 = Math.sign(hi.t - lo.t) * Math.sqrt(disc);
  const t = hi.t - ((hi.t - lo.t) * (hi.slope + d2 - d1)) / (hi.slope - lo.slope + 2 * d2);
  const margin = 0.1 * (b - a);
  if (!Number.isFinite(t) || t < a + margin || t > b - margin) return mid;
  return t;
}

function dot(a: Float64Array, b: Float64Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

function axpy(alpha: number, x: Float64Array, y: Float64Array): void {
  for (let i = 0; i < x.length; i++) y[i] += alpha * x[i];
}

function maxAbs(a: Float64Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}
