/**
 * `fit-law`: fits a power law, a power law plus a constant, or the Chinchilla law to points
 * from upstream outputs or a CSV file, with bootstrap intervals and predictions.
 * Adapter only; the method lives in src/fit/.
 */
import { writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { identificationParams, identificationRule } from './identification-params.js';
import { defineStage, type Json } from '../runtime/stage.js';
import { fitLaw, type PredictPoint } from '../fit/fit.js';
import { applyFilters, checkPositive, pointsFromCsv, pointsFromLists, type FitPoint } from '../fit/points.js';

// Lists usually come from references to upstream outputs; a diverged run may report null.
const Values = Type.Array(Type.Union([Type.Number(), Type.Null()]));
const Columns = (what: string) => Type.Optional(Type.String({ description: `CSV column holding ${what}` }));
const Axis = Type.Optional(Type.Array(Type.Number()));

const Params = Type.Object(
  {
    law: Type.Union([Type.Literal('power'), Type.Literal('power_plus_constant'), Type.Literal('chinchilla')], {
      default: 'power',
      description: 'power: y = a x^b; power_plus_constant: y = c + a x^b; chinchilla: L = E + A/N^alpha + B/D^beta',
    }),
    x: Type.Optional(Values),
    y: Type.Optional(Values),
    N: Type.Optional(Values),
    D: Type.Optional(Values),
    C: Type.Optional(Values),
    U: Type.Optional(
      Type.Array(Type.Number(), {
        description:
          'chinchilla: unique vectors each run trained on (train-sae `unique_samples`); with it the data term is ' +
          'fitted in effective data (repetition_r_star)',
      }),
    ),
    repetition_r_star: Type.Number({
      exclusiveMinimum: 0,
      default: 15.4,
      description:
        "Muennighoff et al.'s R*: effective data D' = U + U R* (1 - exp(-(D/U - 1)/R*)); 15.4 is their " +
        'language-model value, an assumption here',
    }),
    unique_available: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description:
          'chinchilla with U: unique vectors the planned run can draw on (train-sae `train_rows`); optimal data ' +
          "sizes are converted to vectors with it, predict_at's D to effective data (default: the largest U)",
      }),
    ),
    csv: Type.Optional(
      Type.String({ description: 'CSV file, relative to the pipeline folder (instead of the lists)' }),
    ),
    x_column: Columns('x'),
    y_column: Columns('y (chinchilla default: "loss")'),
    N_column: Columns('N (model size)'),
    D_column: Columns('D (training samples/tokens)'),
    C_column: Columns('C (training FLOPs; D = C / (6 N))'),
    on_target: Type.Optional(
      Type.Array(Type.Union([Type.Boolean(), Type.Null()]), {
        description:
          'Parallel to the points (train-sae `l0_on_target`): false leaves the point out, stated in the warnings: a ' +
          'run that ended outside its target L0 is not at matched sparsity',
      }),
    ),
    select_min_by: Type.Optional(
      Type.Array(Type.Union([Type.Number(), Type.Null()]), {
        description:
          'Parallel to the points: for each distinct x keep only the point with the lowest value (e.g. loss, to pick the best lr)',
      }),
    ),
    x_min: Type.Optional(Type.Number({ description: 'Drop points with x (chinchilla: N) below' })),
    x_max: Type.Optional(Type.Number({ description: 'Drop points with x (chinchilla: N) above' })),
    drop_highest: Type.Integer({
      minimum: 0,
      default: 0,
      description: 'Drop the k points with the highest y (Besiroglu et al.: 5)',
    }),
    loss: Type.Optional(
      Type.Union([Type.Literal('huber'), Type.Literal('squared')], {
        description: 'Loss on log residuals; default huber for chinchilla, squared (least squares) otherwise',
      }),
    ),
    huber_delta: Type.Number({ exclusiveMinimum: 0, default: 1e-3 }),
    grid: Type.Optional(
      Type.Object(
        { alpha: Axis, beta: Axis, e: Axis, a: Axis, b: Axis },
        {
          additionalProperties: false,
          description: 'chinchilla starting grid; default alpha, beta 0..2 by 0.5, e -1..1 by 0.5, a, b 0..25 by 5',
        },
      ),
    ),
    bootstrap: Type.Integer({
      minimum: 0,
      default: 200,
      description: 'Bootstrap resamples for the intervals (0: none)',
    }),
    bootstrap_method: Type.Optional(
      Type.Union([Type.Literal('cases'), Type.Literal('residuals')], {
        description:
          'cases: resample points (default for chinchilla, as Besiroglu et al.); residuals: keep x, resample log ' +
          'residuals (default for power laws fitted to a few chosen sizes)',
      }),
    ),
    seed: Type.Integer({ default: 0, description: 'Seed of the bootstrap resampling' }),
    confidence: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.95 }),
    predict_at: Type.Array(Type.Union([Type.Number(), Type.Object({ N: Type.Number(), D: Type.Number() })]), {
      default: [],
      description:
        'Where to evaluate the law: x values, or {N, D} for chinchilla with D in vectors trained on (as the plotted ' +
        'curves); with U the law sees their effective data over unique_available unique vectors, and the prediction ' +
        'states it (D_effective) with the passes, warning beyond the passes measured',
    }),
    optimal_data_for: Type.Array(Type.Number(), {
      default: [],
      description: 'chinchilla: model sizes N for which to give the compute-optimal D under C = 6ND',
    }),
    x_label: Type.Optional(Type.String()),
    y_label: Type.Optional(Type.String()),
    max_iterations: Type.Integer({ minimum: 1, default: 1000, description: 'L-BFGS iterations per start' }),
    ...identificationParams,
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'fit-law',
  version: '4',
  description:
    'Fits a scaling law in log space (closed-form least squares for a power law; L-BFGS with analytic gradients from a ' +
    "grid of starts, Huber loss on log residuals for Chinchilla's law), with seeded bootstrap intervals, goodness of fit, " +
    'predictions (flagged when extrapolating beyond 2x the data) and compute-optimal data sizes.',
  params: Params,
  outputs: {
    fit: {
      kind: 'file',
      description:
        'fit.json: law, params, intervals, points, residuals, goodness, predictions, curve, warnings, and ' +
        "bootstrap_params (every bootstrap refit's parameters: the law's interval at a point chosen later, as the " +
        "report's prediction check at the final run)",
    },
    params: { kind: 'value', description: '{a, b} / {a, b, c} / {E, A, B, alpha, beta}' },
    intervals: { kind: 'value', description: 'Bootstrap percentile interval [lo, hi] per parameter (null if none)' },
    predictions: { kind: 'value', description: 'Predicted y at each predict_at entry, in order' },
    optimal_data: {
      kind: 'value',
      description: 'chinchilla: D_opt(N) for each optimal_data_for entry (vectors; null if none); [] otherwise',
    },
    identified: {
      kind: 'value',
      description: 'Whether the data pin the parameters down (condition number and interval widths within the limits)',
    },
    identification: {
      kind: 'value',
      description:
        '{identified, condition_number, interval_spread, points_per_parameter, span, reasons, design_warnings, rule}',
    },
    warnings: { kind: 'value', description: 'Non-convergence, extrapolation and degenerate-data warnings' },
  },
  inputFiles: (p) => (p.csv ? [p.csv] : []),
  async run(ctx) {
    const p = ctx.params;
    const points = gatherPoints(p, ctx.pipelineDir);
    applyFilters(p.law, points, {
      on_target: p.on_target,
      select_min_by: p.select_min_by?.map(nullToNaN),
      x_min: p.x_min,
      x_max: p.x_max,
      drop_highest: p.drop_highest,
    });
    checkPositive(p.law, points);
    const result = fitLaw(points, {
      law: p.law,
      loss: p.loss,
      huberDelta: p.huber_delta,
      grid: p.grid,
      bootstrap: p.bootstrap,
      bootstrapMethod: p.bootstrap_method,
      seed: p.seed,
      confidence: p.confidence,
      predictAt: p.predict_at as PredictPoint[],
      optimalDataFor: p.optimal_data_for,
      xLabel: p.x_label ?? (p.law === 'chinchilla' ? p.N_column : p.x_column),
      yLabel: p.y_label ?? p.y_column,
      maxIterations: p.max_iterations,
      identification: identificationRule(p),
      repetition: p.U ? { rStar: p.repetition_r_star, uniqueAvailable: p.unique_available } : undefined,
    });
    const kept = points.filter((q) => q.kept).length;
    const shown = Object.entries(result.params)
      .map(([k, v]) => `${k}=${v === null ? 'unbounded' : v.toPrecision(5)}`)
      .join(' ');
    ctx.log(
      `${p.law} fit on ${kept} of ${points.length} points: ${shown} (${result.timing.starts} start(s), ` +
        `${result.timing.fitSeconds.toFixed(2)} s; bootstrap ${result.timing.bootstrapSeconds.toFixed(2)} s)`,
    );
    for (const w of result.warnings) ctx.log(`warning: ${w}`);
    writeFileSync(join(ctx.outDir, 'fit.json'), JSON.stringify(result.json, null, 2) + '\n');
    return {
      fit: 'fit.json',
      params: result.params,
      intervals: result.intervals as Json,
      predictions: result.predictions,
      optimal_data: result.optimalData,
      identified: result.identification.identified,
      identification: result.identification as unknown as Json,
      warnings: result.warnings,
    };
  },
});

type FitParams = {
  law: 'power' | 'power_plus_constant' | 'chinchilla';
  x?: (number | null)[];
  y?: (number | null)[];
  N?: (number | null)[];
  D?: (number | null)[];
  C?: (number | null)[];
  U?: number[];
  csv?: string;
  x_column?: string;
  y_column?: string;
  N_column?: string;
  D_column?: string;
  C_column?: string;
};

function gatherPoints(p: FitParams, pipelineDir: string): FitPoint[] {
  const hasLists = [p.x, p.y, p.N, p.D, p.C].some((v) => v !== undefined);
  if (p.csv !== undefined) {
    if (hasLists) throw new Error('fit-law: give the points either as csv or as x/y (N/D/C/y) lists, not both');
    return pointsFromCsv(p.law, {
      path: isAbsolute(p.csv) ? p.csv : resolve(pipelineDir, p.csv),
      name: p.csv,
      x_column: p.x_column,
      y_column: p.y_column,
      N_column: p.N_column,
      D_column: p.D_column,
      C_column: p.C_column,
    });
  }
  const list = (v?: (number | null)[]) => v?.map(nullToNaN);
  return pointsFromLists(p.law, { x: list(p.x), y: list(p.y), N: list(p.N), D: list(p.D), C: list(p.C), U: p.U });
}

function nullToNaN(v: number | null): number {
  return v === null ? NaN : v;
}
