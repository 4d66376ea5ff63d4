/**
 * fitLaw: fit one law to filtered points, bootstrap its intervals, predict, and assemble
 * the fit.json object (its schema: FitFile in src/formats/fit.ts).
 *
 * Method (Hoffmann et al. 2022, Approach 3; Besiroglu et al. 2024): minimise the sum of
 * Huber losses of log residuals with L-BFGS from every point of a grid of starts, keep the
 * best. Intervals: percentile bootstrap, each refit started from the best point (not the
 * whole grid: the grid is for finding the basin, not for every resample). Two resampling
 * schemes: 'cases' resamples the points (Besiroglu et al.; the default for chinchilla, whose
 * 240 runs are a sample), 'residuals' keeps the x values and adds resampled log residuals to
 * the fitted curve (the default for the power laws: a sweep fits a handful of chosen sizes,
 * where resampling cases would mostly drop sizes and give degenerate refits).
 */
import { minimizeLbfgs, type LbfgsResult } from './lbfgs.js';
import { LAWS, closedFormPower, lossFn, type Law, type LawName, type LogData, type LossKind } from './laws.js';
import type { FitPoint } from './points.js';
import { FIT_FORMAT, type FitFile } from '../formats/fit.js';
import { percentileInterval, resampleWeights, seededRandom } from './stats.js';
import { lawBand } from './band.js';
import { DEFAULT_RULE, identify, type Identification, type IdentificationRule } from './identify.js';
import { dataForEffective, describeRepetition, effectiveData } from './repetition.js';

export interface ChinchillaGrid {
  alpha: number[];
  beta: number[];
  e: number[];
  a: number[];
  b: number[];
}

/** Besiroglu et al.'s grid: np.arange(0, 2.5, .5) for alpha/beta, (-1, 1.5, .5) for e, (0, 30, 5) for a/b. */
export const DEFAULT_GRID: ChinchillaGrid = {
  alpha: [0, 0.5, 1, 1.5, 2],
  beta: [0, 0.5, 1, 1.5, 2],
  e: [-1, -0.5, 0, 0.5, 1],
  a: [0, 5, 10, 15, 20, 25],
  b: [0, 5, 10, 15, 20, 25],
};

export type BootstrapMethod = 'cases' | 'residuals';

export type PredictPoint = number | { N: number; D: number };

export interface FitOptions {
  law: LawName;
  /** Default: huber for chinchilla (its method), squared (least squares in log space) otherwise. */
  loss?: LossKind;
  huberDelta?: number;
  grid?: Partial<ChinchillaGrid>;
  bootstrap?: number;
  /** Default: 'cases' for chinchilla, 'residuals' for the power laws. */
  bootstrapMethod?: BootstrapMethod;
  seed?: number;
  confidence?: number;
  predictAt?: PredictPoint[];
  /** chinchilla: model sizes N whose compute-optimal data size D_opt(N) is wanted. */
  optimalDataFor?: number[];
  xLabel?: string;
  yLabel?: string;
  maxIterations?: number;
  /** Points per plotted curve. */
  curvePoints?: number;
  /** Thresholds of the identification check (identify.ts). */
  identification?: Partial<IdentificationRule>;
  /**
   * chinchilla with points that know their unique vectors U: fit the data term in
   * Muennighoff et al.'s effective data (repetition.ts); optimal data sizes are converted
   * back to vectors for `uniqueAvailable` unique vectors (default: the largest U).
   */
  repetition?: { rStar: number; uniqueAvailable?: number };
}

type Interval = [number, number] | null;

export interface FitOutcome {
  /** The fitted parameters; null where the fit ran off to infinity (the law is then not identified). */
  params: Record<string, number | null>;
  intervals: Record<string, Interval>;
  predictions: number[];
  optimalData: number[];
  identification: Identification;
  warnings: string[];
  /** The fit.json object. */
  json: FitFile;
  /** Wall-clock seconds, for the log only: fit.json stays a pure function of the inputs (its digest feeds the cache). */
  timing: { fitSeconds: number; bootstrapSeconds: number; starts: number };
}

interface BestFit {
  theta: Float64Array;
  objective: number;
  run: Pick<LbfgsResult, 'converged' | 'reason' | 'iterations' | 'gradMax'>;
  starts: number;
  convergedStarts: number;
  bestStart: number[] | null;
}

export function fitLaw(input: FitPoint[], opts: FitOptions): FitOutcome {
  // A copy: the fit sets each point's effective data (D_eff), which must not outlive this fit.
  const points = input.map((p) => ({ ...p }));
  const law = LAWS[opts.law];
  const lossKind: LossKind = opts.loss ?? (opts.law === 'chinchilla' ? 'huber' : 'squared');
  const loss = lossFn(lossKind, opts.huberDelta ?? 1e-3);
  const confidence = opts.confidence ?? 0.95;
  const warnings: string[] = [];
  const missing = points.filter((p) => p.dropped_by === 'no_value');
  if (missing.length)
    warnings.push(
      `${missing.length} point(s) without a value (a diverged or failed run) left out: ${missing.map((p) => p.source).join('; ')}`,
    );
  const offTarget = points.filter((p) => p.dropped_by === 'off_target');
  if (offTarget.length)
    warnings.push(
      `${offTarget.length} point(s) left out because their run ended outside its target L0's tolerance (not at ` +
        `matched sparsity): ${offTarget.map((p) => p.source).join('; ')}`,
    );
  const kept = points.filter((p) => p.kept);
  const offTargetFitted = kept.filter((p) => p.off_target);
  if (offTargetFitted.length)
    warnings.push(
      `${offTargetFitted.length} point(s) whose run ended outside its target L0's tolerance are fitted anyway: too few runs ` +
        `were on target for the law's ${law.paramNames.length} parameters; the law is not identified`,
    );
  checkEnoughPoints(law, points, kept);
  const repetition = law.name === 'chinchilla' ? setEffectiveData(points, opts, warnings) : null;
  const data = toLogData(law, kept);

  const t0 = performance.now();
  const best = fitBest(law, data, lossKind, loss, opts);
  const fitSeconds = (performance.now() - t0) / 1000;
  const params = law.toPublic(best.theta);
  const unbounded = unboundedParams(params);
  if (!best.run.converged) {
    warnings.push(
      `the ${law.name} fit did not converge: L-BFGS stopped (${best.run.reason}) after ${best.run.iterations} ` +
        `iterations with largest gradient component ${best.run.gradMax.toExponential(2)}; the parameters may be inaccurate`,
    );
  }
  warnings.push(...sanityWarnings(law, params));

  const t1 = performance.now();
  // Resampling a fit that already ran off to infinity only measures where the optimiser stopped.
  const boot = unbounded.length ? [] : bootstrap(law, data, lossKind, loss, best.theta, opts, warnings);
  const bootstrapSeconds = (performance.now() - t1) / 1000;
  const band = (values: number[]): Interval => percentileInterval(values, confidence);

  const intervals: Record<string, Interval> = {};
  for (const name of law.paramNames) intervals[name] = band(boot.map((t) => law.toPublic(t)[name]));

  const rule = { ...DEFAULT_RULE, ...opts.identification };
  // With the bootstrap switched off (bootstrap: 0) only the condition number can judge.
  const judgeIntervals = (opts.bootstrap ?? 200) > 0;
  const centred = centredCoefficients(law, data, boot, band);
  const identification = identify(
    law,
    best.theta,
    kept.map((p) => logFeatures(law, p)),
    params,
    { ...intervals, ...centred.intervals },
    axes(law, kept),
    rule,
    judgeIntervals && unbounded.length === 0,
    centred.notes,
  );
  if (unbounded.length) {
    identification.reasons.unshift(...unbounded);
    identification.identified = false;
  }
  if (offTargetFitted.length) {
    identification.reasons.unshift(
      `${offTargetFitted.length} of the ${kept.length} fitted runs missed their target L0 (too few on target): not at matched sparsity`,
    );
    identification.identified = false;
  }
  if (!identification.identified) {
    warnings.push(
      `the ${law.name} law is NOT identified by its data: ${identification.reasons.join('; ')}; ` +
        'a decision taken from it must fall back to a stated rule',
    );
  }

  const range = fittedRange(law, kept);
  const predicted = (opts.predictAt ?? []).map((p, i) =>
    predictOne(law, best.theta, boot, p, i, range, confidence, warnings, repetition),
  );
  const optimal = (opts.optimalDataFor ?? []).map((N) =>
    optimalOne(law, best.theta, boot, N, band, warnings, repetition),
  );

  const finiteParams = finiteRecord(params);
  const residuals = points.map((p) => law.logPredict(best.theta, logFeatures(law, p)) - Math.log(p.y));
  const json: FitFile = {
    format: FIT_FORMAT,
    law: law.name,
    formula: law.formula,
    x_label: opts.xLabel ?? (law.name === 'chinchilla' ? 'N' : 'x'),
    y_label: opts.yLabel ?? 'y',
    ...(law.name === 'chinchilla' ? { d_label: 'D' } : {}),
    params: finiteParams,
    intervals,
    confidence,
    points: points.map((p, i) => ({
      ...pointCoords(law, p),
      y: p.y,
      kept: p.kept,
      ...(p.dropped_by ? { dropped_by: p.dropped_by } : {}),
      residual: finiteOrNull(residuals[i]),
    })),
    residuals: residuals.map(finiteOrNull),
    goodness: goodness(law, data, best.theta, best.objective),
    predictions: predicted,
    curve: curves(law, best.theta, boot, kept, opts, confidence, repetition),
    ...(law.name === 'chinchilla' ? { optimal_data: optimal } : {}),
    identification,
    ...(repetition
      ? {
          repetition: {
            model: repetition.model,
            r_star: repetition.rStar,
            unique_available: repetition.uniqueAvailable,
            max_measured_passes: repetition.maxPasses,
          },
        }
      : {}),
    loss: lossKind === 'huber' ? { kind: 'huber', delta: opts.huberDelta ?? 1e-3 } : { kind: 'squared' },
    optimizer: {
      method:
        law.name === 'power' && lossKind === 'squared'
          ? 'closed-form least squares (log-log)'
          : 'L-BFGS, strong-Wolfe line search, analytic gradient',
      starts: best.starts,
      converged_starts: best.convergedStarts,
      best_start: best.bestStart,
      converged: best.run.converged,
      stop_reason: best.run.reason,
      iterations: best.run.iterations,
    },
    bootstrap_params: boot.map((t) => finiteRecord(law.toPublic(t))),
    bootstrap: {
      method: bootstrapMethod(opts),
      resamples: opts.bootstrap ?? 200,
      used: boot.length,
      seed: opts.seed ?? 0,
    },
    warnings,
  };
  return {
    params: finiteParams,
    intervals,
    predictions: predicted.map((p) => p.y),
    optimalData: optimal.map((o) => o.D),
    identification,
    warnings,
    json,
    timing: { fitSeconds, bootstrapSeconds, starts: best.starts },
  };
}

/**
 * Parameters the fit drove out of floating-point range, one sentence each. The optimiser works
 * in log coordinates (A = exp(a)), so a best fit can be finite there and still overflow: data
 * whose loss drops once and then stays flat make the data term a cliff (beta in the tens, log B
 * in the hundreds). Such a law has no usable value; it is reported as not identified.
 */
function unboundedParams(params: Record<string, number>): string[] {
  return Object.entries(params)
    .filter(([, v]) => !Number.isFinite(v))
    .map(
      ([name, v]) =>
        `the best fit drove ${name} = ${v}: ${name} is not bounded by the data ` +
        '(typically a loss that stops falling within the measured range)',
    );
}

function checkEnoughPoints(law: Law, points: FitPoint[], kept: FitPoint[]): void {
  const k = law.paramNames.length;
  const distinct = new Set(kept.map((p) => (law.name === 'chinchilla' ? `${p.N},${p.D}` : `${p.x}`))).size;
  if (distinct < k) {
    const dropped = points.length - kept.length;
    const field = law.name === 'chinchilla' ? 'N/D/y' : 'x/y';
    throw new Error(
      `fit-law: law "${law.name}" has ${k} parameters (${law.paramNames.join(', ')}) but only ${distinct} distinct ` +
        `point(s) are left to fit (${points.length} given in ${field} or the csv, ${dropped} dropped by filters); ` +
        `give at least ${k}`,
    );
  }
}

function toLogData(law: Law, kept: FitPoint[]): LogData {
  const features = Array.from({ length: law.nFeatures }, () => new Float64Array(kept.length));
  kept.forEach((p, i) => logFeatures(law, p).forEach((v, j) => (features[j][i] = v)));
  return {
    features,
    logY: Float64Array.from(kept, (p) => Math.log(p.y)),
    weights: new Float64Array(kept.length).fill(1),
  };
}

/**
 * The coefficient of a power term, judged where the data are: A / N^alpha = A_c (N / N_c)^-alpha
 * with A_c = A N_c^-alpha and N_c the geometric mean of the fitted N (likewise B at D_c, and a
 * power law's a at x_c). A itself is the term's value at N = 1, the axis's unit: far outside the
 * data, where every bootstrap draw of alpha moves it by a factor N_c^(alpha_hi - alpha_lo). Its
 * interval then measures the units the axis is counted in (vectors or thousands of vectors) more
 * than the data; A_c's does not depend on them. The published intervals stay A's own.
 */
function centredCoefficients(
  law: Law,
  data: LogData,
  boot: Float64Array[],
  band: (values: number[]) => Interval,
): { intervals: Record<string, Interval>; notes: Record<string, string> } {
  const intervals: Record<string, Interval> = {};
  const notes: Record<string, string> = {};
  const mean = (f: Float64Array) => f.reduce((s, v) => s + v, 0) / f.length;
  const terms =
    law.name === 'chinchilla'
      ? [
          { coef: 'A', exponent: 'alpha', axis: 'N', logCentre: mean(data.features[0]), sign: -1 },
          { coef: 'B', exponent: 'beta', axis: 'D', logCentre: mean(data.features[1]), sign: -1 },
        ]
      : [{ coef: 'a', exponent: 'b', axis: 'x', logCentre: mean(data.features[0]), sign: 1 }];
  for (const t of terms) {
    intervals[t.coef] = band(
      boot.map((theta) => {
        const p = law.toPublic(theta);
        return p[t.coef] * Math.exp(t.sign * p[t.exponent] * t.logCentre);
      }),
    );
    notes[t.coef] = `at the data's centre ${t.axis} = ${fmt(Math.exp(t.logCentre))}`;
  }
  return { intervals, notes };
}

/** Log features of a point; chinchilla's data term sees the effective data when repetition is modelled. */
function logFeatures(law: Law, p: { x?: number; N?: number; D?: number; D_eff?: number }): number[] {
  return law.name === 'chinchilla' ? [Math.log(p.N!), Math.log(p.D_eff ?? p.D!)] : [Math.log(p.x!)];
}

function pointCoords(law: Law, p: FitPoint): Record<string, number> {
  if (law.name !== 'chinchilla') return { x: p.x! };
  if (p.U === undefined) return { N: p.N!, D: p.D! };
  return { N: p.N!, D: p.D!, U: p.U, passes: p.D! / p.U, D_effective: p.D_eff! };
}

function axes(law: Law, kept: FitPoint[]): Record<string, number[]> {
  return law.name === 'chinchilla'
    ? { N: kept.map((p) => p.N!), D: kept.map((p) => p.D!) }
    : { x: kept.map((p) => p.x!) };
}

interface Repetition {
  model: string;
  rStar: number;
  uniqueAvailable: number;
  maxPasses: number;
}

/** With unique counts on the points and the repetition option: every point's D_eff; else null (D is taken as fresh). */
function setEffectiveData(points: FitPoint[], opts: FitOptions, warnings: string[]): Repetition | null {
  const withU = points.filter((p) => p.U !== undefined);
  if (!opts.repetition || withU.length === 0) {
    if (withU.some((p) => p.D! > p.U!))
      warnings.push('points repeat their data (D > U) but no repetition model is given: D is taken as fresh data');
    return null;
  }
  const { rStar } = opts.repetition;
  for (const p of points) p.D_eff = p.U === undefined ? p.D : effectiveData(p.D!, p.U, rStar);
  const kept = points.filter((p) => p.kept);
  const uniqueAvailable = opts.repetition.uniqueAvailable ?? Math.max(...kept.map((p) => p.U ?? 0));
  const maxPasses = Math.max(...kept.map((p) => p.D! / (p.U ?? p.D!)));
  return { model: describeRepetition(rStar), rStar, uniqueAvailable, maxPasses };
}

// ---------------------------------------------------------------------------------------
// The fit itself

function fitBest(
  law: Law,
  data: LogData,
  lossKind: LossKind,
  loss: ReturnType<typeof lossFn>,
  opts: FitOptions,
): BestFit {
  const objective = law.objective(data, loss);
  const lbfgs = { maxIterations: opts.maxIterations ?? 1000 };
  if (law.name === 'power') {
    const theta = closedFormPower(data.features[0], data.logY, data.weights)!;
    const exact = { converged: true, reason: 'closed form', iterations: 0, gradMax: 0 };
    if (lossKind === 'squared') {
      return {
        theta,
        objective: objective(theta, new Float64Array(2)),
        run: exact,
        starts: 1,
        convergedStarts: 1,
        bestStart: null,
      };
    }
    const r = minimizeLbfgs(objective, theta, lbfgs);
    return {
      theta: r.x,
      objective: r.f,
      run: r,
      starts: 1,
      convergedStarts: r.converged ? 1 : 0,
      bestStart: Array.from(theta),
    };
  }
  // Two phases: every start runs with a loose stopping rule (enough to tell which basin it
  // falls into), then the best few are polished with the tight default rule. Same answer as
  // polishing every start, at a quarter of the function evaluations.
  const starts = law.name === 'chinchilla' ? chinchillaStarts(opts.grid) : powerPlusConstantStarts(data);
  const screened = starts
    .map((start) => ({ start, r: minimizeLbfgs(objective, start, { ...lbfgs, relTol: 1e-6, patience: 1 }) }))
    .filter(({ r }) => Number.isFinite(r.f))
    .sort((u, v) => u.r.f - v.r.f);
  if (screened.length === 0)
    throw new Error(`fit-law: every one of the ${starts.length} ${law.name} fits failed (non-finite objective)`);
  let best: BestFit | null = null;
  for (const { start, r: rough } of screened.slice(0, POLISHED)) {
    const r = minimizeLbfgs(objective, rough.x, lbfgs);
    if (Number.isFinite(r.f) && (best === null || r.f < best.objective)) {
      best = {
        theta: r.x,
        objective: r.f,
        run: r,
        starts: starts.length,
        convergedStarts: 0,
        bestStart: Array.from(start),
      };
    }
  }
  if (best === null) throw new Error(`fit-law: polishing the best ${law.name} fits failed (non-finite objective)`);
  best.convergedStarts = screened.filter(({ r }) => r.converged).length;
  return best;
}

/** Screened starts refined with the tight stopping rule. */
const POLISHED = 10;

/** Grid of starts in the optimiser's coordinates [a, b, e, alpha, beta], Besiroglu's loop order. */
function chinchillaStarts(grid: Partial<ChinchillaGrid> = {}): Float64Array[] {
  const g = { ...DEFAULT_GRID, ...grid };
  const starts: Float64Array[] = [];
  for (const alpha of g.alpha)
    for (const beta of g.beta)
      for (const e of g.e) for (const a of g.a) for (const b of g.b) starts.push(Float64Array.of(a, b, e, alpha, beta));
  if (starts.length === 0) throw new Error('fit-law: grid has an empty axis: no starting point');
  return starts;
}

/**
 * Data-driven starts for y = c + a x^b: for c at several fractions of min(y), the
 * closed-form power fit of y - c gives a and b. Covers c ~ 0 (a pure power law) up to a
 * floor just under the smallest observation.
 */
function powerPlusConstantStarts(data: LogData): Float64Array[] {
  const minY = Math.exp(Math.min(...data.logY));
  const starts: Float64Array[] = [];
  for (const frac of [1e-3, 0.25, 0.5, 0.75, 0.9, 0.97, 0.99]) {
    const c = frac * minY;
    const shifted = Float64Array.from(data.logY, (ly) => Math.log(Math.exp(ly) - c));
    const ab = closedFormPower(data.features[0], shifted, data.weights);
    if (ab) starts.push(Float64Array.of(ab[0], ab[1], Math.log(c)));
  }
  return starts;
}

function bootstrap(
  law: Law,
  data: LogData,
  lossKind: LossKind,
  loss: ReturnType<typeof lossFn>,
  theta: Float64Array,
  opts: FitOptions,
  warnings: string[],
): Float64Array[] {
  const resamples = opts.bootstrap ?? 200;
  if (resamples <= 0) return [];
  const n = data.logY.length;
  if (n <= law.paramNames.length) {
    warnings.push(
      `${n} points for ${law.paramNames.length} parameters: the fit passes through every point, ` +
        'so it has no residual scatter to bootstrap; intervals are null',
    );
    return [];
  }
  const random = seededRandom(opts.seed ?? 0);
  const method = bootstrapMethod(opts);
  const draw =
    method === 'cases'
      ? () => ({ ...data, weights: resampleWeights(n, random) })
      : residualResampler(law, data, theta, random);
  const samples: Float64Array[] = [];
  let failed = 0;
  for (let i = 0; i < resamples; i++) {
    const t = refit(law, draw(), lossKind, loss, theta, opts);
    if (t) samples.push(t);
    else failed++;
  }
  if (failed > 0.05 * resamples) {
    warnings.push(
      `${failed} of ${resamples} bootstrap refits (${method}) failed or did not converge (degenerate resamples); ` +
        `intervals use the other ${samples.length}`,
    );
  }
  return samples;
}

function bootstrapMethod(opts: FitOptions): BootstrapMethod {
  return opts.bootstrapMethod ?? (opts.law === 'chinchilla' ? 'cases' : 'residuals');
}

/**
 * Residual bootstrap: log y*_i = fitted_i + s * r_J with J drawn uniformly, residuals
 * centred and inflated by s = sqrt(n / (n - k)) for the k fitted parameters.
 */
function residualResampler(law: Law, data: LogData, theta: Float64Array, random: () => number): () => LogData {
  const n = data.logY.length;
  const fitted = Float64Array.from({ length: n }, (_, i) =>
    law.logPredict(
      theta,
      data.features.map((f) => f[i]),
    ),
  );
  const r = Float64Array.from(data.logY, (ly, i) => ly - fitted[i]);
  const mean = r.reduce((a, b) => a + b, 0) / n;
  const scale = Math.sqrt(n / (n - law.paramNames.length));
  return () => ({
    features: data.features,
    weights: data.weights,
    logY: Float64Array.from(fitted, (f) => f + scale * (r[Math.floor(random() * n)] - mean)),
  });
}

/** One bootstrap refit from the best point; null if degenerate or not converged. */
function refit(
  law: Law,
  data: LogData,
  lossKind: LossKind,
  loss: ReturnType<typeof lossFn>,
  theta: Float64Array,
  opts: FitOptions,
): Float64Array | null {
  if (law.name === 'power' && lossKind === 'squared') return closedFormPower(data.features[0], data.logY, data.weights);
  if (distinctWeighted(data) < law.paramNames.length) return null;
  const r = minimizeLbfgs(law.objective(data, loss), theta, { maxIterations: opts.maxIterations ?? 1000 });
  return r.converged && Number.isFinite(r.f) ? r.x : null;
}

function distinctWeighted(data: LogData): number {
  const seen = new Set<string>();
  data.weights.forEach((w, i) => w > 0 && seen.add(data.features.map((f) => f[i]).join(',')));
  return seen.size;
}

// ---------------------------------------------------------------------------------------
// What the fit is used for

interface Range {
  min: number[];
  max: number[];
}

/** The fitted points' range in the law's variables (chinchilla: N and the effective data D'). */
function fittedRange(law: Law, kept: FitPoint[]): Range {
  const cols =
    law.name === 'chinchilla' ? [kept.map((p) => p.N!), kept.map((p) => p.D_eff ?? p.D!)] : [kept.map((p) => p.x!)];
  return { min: cols.map((c) => Math.min(...c)), max: cols.map((c) => Math.max(...c)) };
}

/**
 * The law at one predict_at entry: x, or chinchilla's {N, D} with D in vectors trained on (as
 * everywhere in the pipeline), which the law sees as their effective data under the repetition
 * model; the record then states that effective data and the passes over the unique vectors.
 */
function predictOne(
  law: Law,
  theta: Float64Array,
  boot: Float64Array[],
  at: PredictPoint,
  i: number,
  range: Range,
  confidence: number,
  warnings: string[],
  repetition: Repetition | null,
) {
  const coords = law.name === 'chinchilla' ? asND(at, i) : { x: asX(at, i) };
  const values =
    law.name === 'chinchilla'
      ? [(coords as { N: number }).N, effectiveFor(repetition, (coords as { D: number }).D)]
      : [(coords as { x: number }).x];
  const { y, interval } = lawBand(law, theta, boot, values, confidence);
  // How far outside the data, in the law's variables: x / largest fitted x (chinchilla: the larger of N and D' ratios).
  const extrapolation = Math.max(...values.map((v, j) => v / range.max[j]));
  const below = Math.min(...values.map((v, j) => v / range.min[j]));
  const names = law.name === 'chinchilla' ? ['N', repetition ? "D'" : 'D'] : ['x'];
  const where =
    repetition && 'D' in coords
      ? `N=${fmt(coords.N)}, D=${fmt(coords.D)} vectors (effective data D'=${fmt(values[1])})`
      : values.map((v, j) => `${names[j]}=${fmt(v)}`).join(', ');
  if (extrapolation > 2) {
    warnings.push(
      `prediction ${i} at ${where} is ${extrapolation.toFixed(1)}x the largest fitted value ` +
        `(${names.map((n, j) => `${n} <= ${fmt(range.max[j])}`).join(', ')}): extrapolation`,
    );
  } else if (below < 0.5) {
    warnings.push(`prediction ${i} at ${where} is below half the smallest fitted value: extrapolation`);
  }
  const out = { ...coords, y, lo: interval ? interval[0] : null, hi: interval ? interval[1] : null, extrapolation };
  if (!repetition || !('D' in coords)) return out;
  const over = passesOver(repetition, coords.D, `prediction ${i} at ${where}`);
  if (over.warning) warnings.push(over.warning);
  return { ...out, D_effective: values[1], passes: over.passes, beyond_measured_passes: over.beyond };
}

/** The data the law's data term sees for D vectors trained on: their effective data under the repetition model. */
function effectiveFor(repetition: Repetition | null, D: number): number {
  return repetition ? effectiveData(D, repetition.uniqueAvailable, repetition.rStar) : D;
}

/** D vectors as passes over the unique vectors available, and the warning when beyond every fitted run's passes. */
function passesOver(repetition: Repetition, D: number, subject: string) {
  const passes = D / repetition.uniqueAvailable;
  const beyond = passes > repetition.maxPasses;
  const warning = beyond
    ? `${subject} makes ${fmt(passes)} passes over the ${fmt(repetition.uniqueAvailable)} unique vectors, beyond ` +
      `the ${fmt(repetition.maxPasses)} passes measured: the repetition model is extrapolated`
    : null;
  return { passes, beyond, warning };
}

function asX(at: PredictPoint, i: number): number {
  if (typeof at !== 'number' || !(at > 0))
    throw new Error(`fit-law: predict_at[${i}] = ${JSON.stringify(at)} must be a positive number`);
  return at;
}

function asND(at: PredictPoint, i: number): { N: number; D: number } {
  if (typeof at !== 'object' || !(at.N > 0) || !(at.D > 0)) {
    throw new Error(
      `fit-law: predict_at[${i}] = ${JSON.stringify(at)} must be {N, D} with positive N and D for a chinchilla law`,
    );
  }
  return { N: at.N, D: at.D };
}

/**
 * Compute-optimal data size for model size N under C = 6 N D. Minimising
 * E + A N^-alpha + B D^-beta on the curve 6ND = C gives N_opt(C) = G (C/6)^(beta/(alpha+beta))
 * with G = (alpha A / (beta B))^(1/(alpha+beta)); inverting, C/6 = (N/G)^((alpha+beta)/beta)
 * and D = C / (6N).
 */
export function optimalData(p: Record<string, number>, N: number): number {
  const { A, B, alpha, beta } = p;
  if (!(alpha > 0 && beta > 0)) return NaN;
  const G = ((alpha * A) / (beta * B)) ** (1 / (alpha + beta));
  const cOver6 = (N / G) ** ((alpha + beta) / beta);
  return cOver6 / N;
}

function optimalOne(
  law: Law,
  theta: Float64Array,
  boot: Float64Array[],
  N: number,
  band: (v: number[]) => Interval,
  warnings: string[],
  repetition: Repetition | null,
) {
  if (law.name !== 'chinchilla') throw new Error('fit-law: optimal_data_for needs law: chinchilla');
  if (!(N > 0)) throw new Error(`fit-law: optimal_data_for value ${N} must be a positive model size`);
  const p = law.toPublic(theta);
  const effective = optimalData(p, N);
  if (!Number.isFinite(effective)) {
    const why =
      p.alpha > 0 && p.beta > 0
        ? 'the fitted parameters are not all finite'
        : `it needs alpha > 0 and beta > 0 (got ${p.alpha}, ${p.beta})`;
    warnings.push(`no compute-optimal data size for N=${fmt(N)}: ${why}`);
  }
  // The law's D is effective data; the run needs vectors, repeating the unique ones available.
  const toVectors = (d: number) => (repetition ? dataForEffective(d, repetition.uniqueAvailable, repetition.rStar) : d);
  const D = toVectors(effective);
  const b = band(boot.map((t) => toVectors(optimalData(law.toPublic(t), N))));
  const out = { N, D: finiteOrNull(D) as number, C: finiteOrNull(6 * N * D), lo: b ? b[0] : null, hi: b ? b[1] : null };
  if (!repetition) return out;
  const over = passesOver(repetition, D, `the compute-optimal data size for N=${fmt(N)} (${fmt(D)} vectors)`);
  if (Number.isFinite(effective) && !Number.isFinite(D)) {
    warnings.push(
      `the compute-optimal effective data for N=${fmt(N)} (${fmt(effective)}) is more than repeating ` +
        `${fmt(repetition.uniqueAvailable)} unique vectors can give (at most ` +
        `${fmt(repetition.uniqueAvailable * (1 + repetition.rStar))}): no data size`,
    );
  } else if (over.warning) {
    warnings.push(over.warning);
  }
  return {
    ...out,
    D_effective: finiteOrNull(effective),
    passes: finiteOrNull(over.passes),
    beyond_measured_passes: over.beyond,
  };
}

function goodness(law: Law, data: LogData, theta: Float64Array, objective: number) {
  const n = data.logY.length;
  let ssRes = 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += data.logY[i] / n;
  let ssTot = 0;
  for (let i = 0; i < n; i++) {
    const r =
      law.logPredict(
        theta,
        data.features.map((f) => f[i]),
      ) - data.logY[i];
    ssRes += r * r;
    ssTot += (data.logY[i] - mean) ** 2;
  }
  return {
    r2: ssTot > 0 ? 1 - ssRes / ssTot : null,
    rmse_log: Math.sqrt(ssRes / n),
    objective,
    n_points: n,
    n_params: law.paramNames.length,
  };
}

/** Dense curves for plotting: power laws one curve in x; chinchilla one curve in D per distinct N (up to 12). */
function curves(
  law: Law,
  theta: Float64Array,
  boot: Float64Array[],
  kept: FitPoint[],
  opts: FitOptions,
  confidence: number,
  repetition: Repetition | null,
) {
  const m = opts.curvePoints ?? 60;
  const at = (point: number[]) => {
    const { y, interval } = lawBand(law, theta, boot, point, confidence);
    return { y, lo: interval ? interval[0] : null, hi: interval ? interval[1] : null };
  };
  if (law.name !== 'chinchilla') {
    const xs = [
      ...kept.map((p) => p.x!),
      ...(opts.predictAt ?? []).filter((v): v is number => typeof v === 'number' && v > 0),
    ];
    return logSpace(Math.min(...xs), Math.max(...xs), m).map((x) => ({ x, ...at([x]) }));
  }
  const Ns = [...new Set(kept.map((p) => p.N!))].sort((a, b) => a - b);
  if (Ns.length > 12) return undefined;
  const Ds = kept.map((p) => p.D!);
  // With a repetition model the curve is drawn against vectors trained on, predicted from their effective data.
  return Ns.map((N) => ({
    N,
    points: logSpace(Math.min(...Ds), Math.max(...Ds), m).map((D) => ({
      x: D,
      ...at([N, effectiveFor(repetition, D)]),
    })),
  }));
}

function logSpace(lo: number, hi: number, m: number): number[] {
  if (lo === hi || m < 2) return [lo];
  const a = Math.log(lo);
  const b = Math.log(hi);
  return Array.from({ length: m }, (_, i) => Math.exp(a + ((b - a) * i) / (m - 1)));
}

function sanityWarnings(law: Law, p: Record<string, number>): string[] {
  const w: string[] = [];
  if (law.name === 'chinchilla' && (p.alpha <= 0 || p.beta <= 0)) {
    w.push(
      `fitted exponents alpha=${p.alpha.toPrecision(4)}, beta=${p.beta.toPrecision(4)}: a non-positive exponent ` +
        `means the loss does not fall with that variable in this data`,
    );
  }
  if (law.name === 'power_plus_constant' && p.c < 1e-6 * p.a) {
    w.push('fitted constant c is ~0: the data show no floor, a plain power law may fit as well');
  }
  return w;
}

function finiteRecord(p: Record<string, number>): Record<string, number | null> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, finiteOrNull(v)]));
}

function finiteOrNull(v: number): number | null {
  return Number.isFinite(v) ? v : null;
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : String(+v.toPrecision(4));
}
