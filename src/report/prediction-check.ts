/**
 * The prediction check: did the law fitted on the small runs predict the final run?
 *
 * Only a law in both size and data (Chinchilla's L = E + A/N^alpha + B/D'^beta) speaks to the
 * final run's point (N, D): a power law in one variable was fitted on each width's (or data
 * size's) best small run, at the small runs' value of the other variable. The law is evaluated
 * at the final run's width and its effective data D' (counted as the fit counts it: the
 * repetition model of fit.json over the run's unique vectors), with the percentile interval of
 * the same evaluation over the fit's bootstrap refits (fit.json `bootstrap_params`). That
 * interval is the law's parameter uncertainty only, not the scatter of one run around the law
 * (the fit's RMSE(log) says how large that is on the small runs), so a measurement outside it
 * is a warning to look, not a proof that the law failed.
 */
import { lawBand, thetaOf } from '../fit/band.js';
import { LAWS } from '../fit/laws.js';
import { effectiveData } from '../fit/repetition.js';
import type { FitFile } from '../formats/fit.js';
import type { LoadedRun, ReportInputs } from './inputs.js';
import { formatNumber } from './plots.js';

/** inside / outside the interval; no_interval: cannot be judged; not_identified: not meaningful. */
export type Verdict = 'inside' | 'outside' | 'no_interval' | 'not_identified';

/** The final run as the law sees it: width N, vectors trained on D, distinct vectors U, the measured y. */
export interface FinalPoint {
  N: number;
  D: number;
  U: number | null;
  measured: number;
  /** The eval metric compared (the fit's y), e.g. 'fvu'. */
  metric: string;
}

export interface PredictionCheck {
  law: string;
  verdict: Verdict;
  final: FinalPoint;
  /** The data the law's data term sees at the final run (D itself without a repetition model). */
  dEffective: number;
  predicted: number;
  interval: [number, number] | null;
  confidence: number;
  /** measured / predicted. */
  ratio: number;
  /** The final run's N and D' over the largest fitted ones. */
  beyond: { N: number; D: number };
  /** The fit's RMSE of log residuals on the small runs: a single run's typical scatter around the law. */
  rmseLog: number | null;
  /** Recipe settings of the final run that no fitted run had: 'l0_controller_gain 0.005 (fitted runs: 0.02)'. */
  recipe: string[];
  /** One sentence: what was compared and the verdict. */
  headline: string;
  /** The caveats, one sentence each. */
  notes: string[];
  /** The report warning: set unless the measurement is inside the interval. */
  warning: string | null;
}

/** The law at the final run's point, its interval from the bootstrap refits, and the verdict. */
export function checkPrediction(fit: FitFile, final: FinalPoint, recipe: string[] = []): PredictionCheck {
  const law = LAWS.chinchilla;
  if (fit.law !== law.name) throw new Error(`prediction check: needs a chinchilla fit, got "${fit.law}"`);
  const rStar = fit.repetition?.r_star;
  const dEffective = rStar !== undefined && final.U !== null ? effectiveData(final.D, final.U, rStar) : final.D;
  const confidence = fit.confidence ?? 0.95;
  const { y: predicted, interval } = lawBand(
    law,
    thetaOf(law, fit.params),
    (fit.bootstrap_params ?? []).map((p) => thetaOf(law, p)),
    [final.N, dEffective],
    confidence,
  );
  const verdict = judge(fit.identification?.identified !== false, interval, final.measured);
  const kept = fit.points.filter((p) => p.kept);
  const beyond = {
    N: final.N / Math.max(...kept.map((p) => p.N ?? 0)),
    D: dEffective / Math.max(...kept.map((p) => p.D_effective ?? p.D ?? 0)),
  };
  const check = {
    law: law.name,
    verdict,
    final,
    dEffective,
    predicted,
    interval,
    confidence,
    ratio: final.measured / predicted,
    beyond,
    rmseLog: fit.goodness?.rmse_log ?? null,
    recipe,
  };
  return { ...check, ...describe(check, fit) };
}

function judge(identified: boolean, interval: [number, number] | null, measured: number): Verdict {
  if (!identified) return 'not_identified';
  if (interval === null) return 'no_interval';
  return measured >= interval[0] && measured <= interval[1] ? 'inside' : 'outside';
}

type Facts = Omit<PredictionCheck, 'headline' | 'notes' | 'warning'>;

function describe(c: Facts, fit: FitFile): Pick<PredictionCheck, 'headline' | 'notes' | 'warning'> {
  const f = formatNumber;
  const conf = `${Math.round(c.confidence * 100)}%`;
  const where =
    `${fit.x_label ?? 'N'} = ${f(c.final.N)}, ${f(c.final.D)} vectors` +
    (c.final.U !== null && c.dEffective !== c.final.D
      ? ` (${f(c.final.D / c.final.U)} passes over ${f(c.final.U)} unique: effective data ${f(c.dEffective)})`
      : '');
  const predicted = `${f(c.predicted)}${c.interval ? ` ${conf} [${f(c.interval[0])}, ${f(c.interval[1])}]` : ''}`;
  const compared =
    `the ${c.law} law fitted on the small runs predicts held-out ${c.final.metric} ${predicted} at the final run's ` +
    `${where}; measured ${f(c.final.measured)} (${f(c.ratio)}× the prediction)`;
  const verdicts: Record<Verdict, string> = {
    inside: `inside the law's ${conf} interval`,
    outside: `OUTSIDE the law's ${conf} interval`,
    no_interval: 'cannot be judged: the fit has no bootstrap interval',
    not_identified: 'not meaningful: the law is not identified by its data',
  };
  const headline = `${capitalise(compared)}: ${verdicts[c.verdict]}.`;
  const notes = [
    `The interval is the law's parameter uncertainty (bootstrap refits), not one run's scatter around the law` +
      (c.rmseLog !== null ? ` (RMSE(log) of the small runs around it: ${f(c.rmseLog)})` : '') +
      '.',
    `The final run is ${f(c.beyond.N)}× the largest fitted width and ${f(c.beyond.D)}× the largest fitted ` +
      `${c.final.U !== null && c.dEffective !== c.final.D ? 'effective data' : 'data'}: an extrapolation.`,
    c.recipe.length
      ? `The final run's recipe differs from the fitted runs' (the law does not model it): ${c.recipe.join('; ')}.`
      : "The final run's recipe (controller settings, learning rate) matches the fitted runs' as far as their configs say.",
    "Power laws in one variable (size or data alone) predict at the small runs' other variable, not at the " +
      "final run's (size, data): they are not checked here.",
  ];
  const warning =
    c.verdict === 'inside'
      ? null
      : c.verdict === 'outside'
        ? `PREDICTION MISSED: ${compared}, outside the law's ${conf} interval` +
          (c.recipe.length ? ` (the final run's recipe differs: ${c.recipe.join('; ')})` : '')
        : `PREDICTION CHECK ${c.verdict === 'no_interval' ? 'NOT JUDGED' : 'NOT MEANINGFUL'}: ${compared}; ${verdicts[c.verdict]}`;
  return { headline, notes, warning };
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// ---------------------------------------------------------------------------------------
// From the report's inputs

/** Config keys that say which run it is, not how it was trained (or copy another key). */
const NOT_RECIPE = new Set([
  'type',
  'format',
  'instance',
  'd_sae',
  'n_samples',
  'steps',
  'seed',
  'd_in',
  'lambda',
  'backend',
  'device',
  'threads',
  'checkpoint_every',
  'log_every',
  'on_divergence',
  'model_name',
  'hook_name',
  'dataset_path',
  'context_size',
]);

/** The check of every chinchilla loss fit against the final run; [] without a final run or its measurement. */
export function predictionChecks(inputs: ReportInputs): PredictionCheck[] {
  const run = inputs.finalRun;
  if (!run?.config) return [];
  return inputs.lossFits
    .filter(({ fit }) => fit.law === 'chinchilla')
    .flatMap(({ fit }) => {
      const fitted = fittedRuns(fit, inputs.runs);
      const metric = fitted[0]?.metric ?? 'fvu';
      const point = finalPoint(run, inputs.finalEval, metric);
      return point
        ? [
            checkPrediction(
              fit,
              point,
              recipeDifferences(
                run,
                fitted.map((m) => m.run),
              ),
            ),
          ]
        : [];
    });
}

function finalPoint(run: LoadedRun, ev: ReportInputs['finalEval'], metric: string): FinalPoint | null {
  const N = run.config?.d_sae;
  const D = run.config?.n_samples;
  const measured = ev?.[metric];
  if (typeof N !== 'number' || typeof D !== 'number' || typeof measured !== 'number') return null;
  return { N, D, U: run.run?.unique_samples ?? null, measured, metric };
}

interface Matched {
  run: LoadedRun;
  metric: string;
}

/** The runs a kept point of the fit came from: same width and data, and an eval metric equal to the point's y. */
function fittedRuns(fit: FitFile, runs: LoadedRun[]): Matched[] {
  const out: Matched[] = [];
  for (const p of fit.points.filter((q) => q.kept)) {
    for (const run of runs) {
      if (run.config?.d_sae !== p.N || run.config?.n_samples !== p.D) continue;
      // Several metrics may hold the same number (mse = fvu on unit-variance data): fvu first.
      const equal = Object.keys(run.eval ?? {}).filter((k) => run.eval?.[k] === p.y);
      if (equal.length) out.push({ run, metric: equal.includes('fvu') ? 'fvu' : equal[0] });
    }
  }
  return out;
}

/** Recipe settings of the final run that none of the fitted runs had, each with the fitted runs' values. */
export function recipeDifferences(final: LoadedRun, fitted: LoadedRun[]): string[] {
  if (!fitted.length || !final.config) return [];
  const out: string[] = [];
  for (const [key, value] of Object.entries(final.config)) {
    if (NOT_RECIPE.has(key) || typeof value === 'object') continue;
    const theirs = [...new Set(fitted.map((r) => r.config?.[key]))];
    if (theirs.includes(value)) continue;
    out.push(`${key} ${show(value)} (fitted runs: ${theirs.map(show).join(', ')})`);
  }
  const passes = final.run?.passes;
  const fittedPasses = fitted.map((r) => r.run?.passes).filter((v): v is number => typeof v === 'number');
  if (typeof passes === 'number' && fittedPasses.length && passes > Math.max(...fittedPasses))
    out.push(
      `${formatNumber(passes)} passes over the data (fitted runs: at most ${formatNumber(Math.max(...fittedPasses))})`,
    );
  return out;
}

function show(v: unknown): string {
  return v === undefined ? 'unset' : typeof v === 'number' ? formatNumber(v) : String(v);
}
