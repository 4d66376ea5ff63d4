/**
 * The best learning rate of one width, as a continuous quantity: a parabola in log lr fitted
 * to log loss around the swept minimum (the loss of a well-tuned run is close to quadratic
 * in log lr near its optimum; Wortsman et al. 2023 "Small-scale proxies"; Bjorck et al. 2024).
 * The vertex is the optimum; a residual bootstrap of the parabola gives its interval. A
 * minimum on the first or last swept lr is an edge: the optimum lies beyond the grid, so the
 * sweep measured only a bound, and no optimum is claimed. Replicates at one lr (runs that differ
 * only in their training seed) count once, at the geometric mean of their losses: the vertex is
 * fitted to the mean curve, whose noise is the replicates' divided by sqrt(replicates). An lr at
 * which any replicate diverged counts as diverged.
 */
import { quantile, seededRandom } from './stats.js';

export interface LrOptimum {
  width: number;
  /** Swept learning rates (ascending, distinct) and their held-out losses (null: diverged). */
  lrs: number[];
  losses: Array<number | null>;
  /** Most runs at one lr (their losses averaged). */
  replicates: number;
  /** Swept lr with the lowest loss. */
  best_swept: number | null;
  /** Continuous optimum (parabola vertex); null at an edge or without a convex parabola. */
  optimum: number | null;
  interval: [number, number] | null;
  /** 'lower' / 'upper': the lowest loss is on that end of the grid. */
  edge: 'lower' | 'upper' | null;
  /** Parabola log loss = c0 + c1 u + c2 u^2 in u = ln lr, and the points it used. */
  parabola: { c0: number; c1: number; c2: number; points: number } | null;
  note: string | null;
}

export interface LrOptimumOptions {
  /** Points of the window around the minimum the parabola is fitted to (odd, >= 3). */
  window?: number;
  bootstrap?: number;
  seed?: number;
  confidence?: number;
}

export function lrOptimum(
  width: number,
  lrs: number[],
  losses: Array<number | null>,
  opts: LrOptimumOptions = {},
): LrOptimum {
  const { sortedLrs, sortedLosses, replicates, diverged } = averageReplicates(lrs, losses);
  const base = { width, lrs: sortedLrs, losses: sortedLosses, replicates };
  const result = optimumOfCurve(base, opts);
  return diverged.length ? { ...result, note: [result.note, ...diverged].filter(Boolean).join('; ') } : result;
}

/**
 * One loss per distinct lr: the geometric mean of its runs, or null (diverged) when any of them
 * diverged: an lr that trains only with some seeds is not an optimum to extrapolate.
 */
function averageReplicates(lrs: number[], losses: Array<number | null>) {
  const byLr = new Map<number, Array<number | null>>();
  lrs.forEach((lr, i) => byLr.set(lr, [...(byLr.get(lr) ?? []), losses[i]]));
  const sortedLrs = [...byLr.keys()].sort((a, b) => a - b);
  const diverged: string[] = [];
  const sortedLosses = sortedLrs.map((lr) => {
    const runs = byLr.get(lr)!;
    const ok = runs.filter((y): y is number => typeof y === 'number' && Number.isFinite(y) && y > 0);
    if (ok.length < runs.length) {
      if (ok.length > 0) {
        diverged.push(
          `${runs.length - ok.length} of ${runs.length} runs at lr ${fmt(lr)} diverged: that lr counts as diverged`,
        );
      }
      return null;
    }
    return Math.exp(ok.reduce((s, y) => s + Math.log(y), 0) / ok.length);
  });
  const replicates = Math.max(0, ...[...byLr.values()].map((r) => r.length));
  return { sortedLrs, sortedLosses, replicates, diverged };
}

function optimumOfCurve(
  base: { width: number; lrs: number[]; losses: Array<number | null>; replicates: number },
  opts: LrOptimumOptions,
): LrOptimum {
  const { lrs: sortedLrs } = base;
  const finite = base.lrs
    .map((lr, k) => ({ u: Math.log(lr), y: base.losses[k], k }))
    .filter(
      (p): p is { u: number; y: number; k: number } => typeof p.y === 'number' && Number.isFinite(p.y) && p.y > 0,
    );
  if (finite.length === 0)
    return {
      ...base,
      best_swept: null,
      optimum: null,
      interval: null,
      edge: null,
      parabola: null,
      note: 'every run diverged',
    };
  const bestIdx = finite.reduce((b, p, i) => (p.y < finite[b].y ? i : b), 0);
  const bestSwept = Math.exp(finite[bestIdx].u);
  // A diverged run above the best one still bounds the optimum from above: only the grid's own ends are edges.
  const edge = finite[bestIdx].k === 0 ? 'lower' : finite[bestIdx].k === sortedLrs.length - 1 ? 'upper' : null;
  if (edge) {
    const note =
      `the lowest loss is at the ${edge} end of the swept grid (lr ${fmt(bestSwept)}): the optimum lies ` +
      `${edge === 'lower' ? 'below' : 'above'} it`;
    return { ...base, best_swept: bestSwept, optimum: null, interval: null, edge, parabola: null, note };
  }
  const half = Math.max(1, Math.floor((opts.window ?? 5) / 2));
  const lo = Math.max(0, bestIdx - half);
  const hi = Math.min(finite.length, bestIdx + half + 1);
  const win = finite.slice(lo, hi);
  const u = win.map((p) => p.u);
  const y = win.map((p) => Math.log(p.y));
  const c = fitParabola(u, y);
  if (!c || !(c[2] > 0)) {
    return {
      ...base,
      best_swept: bestSwept,
      optimum: null,
      interval: null,
      edge: null,
      parabola: null,
      note: 'the losses around the minimum are not convex in log lr: no parabola',
    };
  }
  const vertex = clampTo(-c[1] / (2 * c[2]), u[0], u[u.length - 1]);
  const interval = bootstrapVertex(u, y, c, opts);
  return {
    ...base,
    best_swept: bestSwept,
    optimum: Math.exp(vertex),
    interval,
    edge: null,
    parabola: { c0: c[0], c1: c[1], c2: c[2], points: win.length },
    note: interval
      ? null
      : `${win.length} points for a 3-parameter parabola: no residual scatter to bootstrap, no interval`,
  };
}

/** Least squares y = c0 + c1 u + c2 u^2 (centred for conditioning); null if singular. */
export function fitParabola(u: number[], y: number[]): [number, number, number] | null {
  const n = u.length;
  if (n < 3) return null;
  const m = u.reduce((a, b) => a + b, 0) / n;
  // Normal equations in t = u - m.
  const S = [0, 0, 0, 0, 0];
  const T = [0, 0, 0];
  for (let i = 0; i < n; i++) {
    const t = u[i] - m;
    let p = 1;
    for (let k = 0; k < 5; k++) {
      S[k] += p;
      if (k < 3) T[k] += p * y[i];
      p *= t;
    }
  }
  const A = [
    [S[0], S[1], S[2]],
    [S[1], S[2], S[3]],
    [S[2], S[3], S[4]],
  ];
  const b = solve3(A, T);
  if (!b) return null;
  // Back to u: b0 + b1 (u - m) + b2 (u - m)^2.
  return [b[0] - b[1] * m + b[2] * m * m, b[1] - 2 * b[2] * m, b[2]];
}

function solve3(A: number[][], b: number[]): number[] | null {
  const det = (M: number[][]) =>
    M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -
    M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +
    M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]);
  const d = det(A);
  if (!(Math.abs(d) > 1e-300) || !Number.isFinite(d)) return null;
  return [0, 1, 2].map((j) => det(A.map((row, i) => row.map((v, k) => (k === j ? b[i] : v)))) / d);
}

/** Percentile interval of the vertex under a residual bootstrap (vertices clamped to the window). */
function bootstrapVertex(u: number[], y: number[], c: number[], opts: LrOptimumOptions): [number, number] | null {
  const n = u.length;
  if (n <= 3) return null;
  const fitted = u.map((v) => c[0] + c[1] * v + c[2] * v * v);
  const r = y.map((v, i) => v - fitted[i]);
  const mean = r.reduce((a, b) => a + b, 0) / n;
  const scale = Math.sqrt(n / (n - 3));
  const random = seededRandom(opts.seed ?? 0);
  const vertices: number[] = [];
  for (let s = 0; s < (opts.bootstrap ?? 200); s++) {
    const ys = fitted.map((f) => f + scale * (r[Math.floor(random() * n)] - mean));
    const cs = fitParabola(u, ys);
    // A resample that is not convex has its optimum somewhere on the window: its edge.
    const v = cs && cs[2] > 0 ? -cs[1] / (2 * cs[2]) : cs && cs[1] > 0 ? u[0] : u[n - 1];
    vertices.push(clampTo(v, u[0], u[n - 1]));
  }
  const tail = (1 - (opts.confidence ?? 0.95)) / 2;
  return [Math.exp(quantile(vertices, tail)), Math.exp(quantile(vertices, 1 - tail))];
}

function clampTo(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}

function fmt(v: number): string {
  return String(+v.toPrecision(3));
}
