/**
 * fit.json (written by fit-law and lr-law, read by the report): a fitted law, its points,
 * intervals, predictions, curve; and the decision records (decide, lr-law's `decision` value
 * output) that lr-law's fit.json also holds. Version: `format: 'fit/1'`; files written before the
 * field existed are version 1, so it is optional.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Num } from './scalars.js';

/** [lo, hi], or null where the bootstrap gave no interval. */
const Interval = Nullable(Type.Tuple([Type.Number(), Type.Number()]));

export const FIT_FORMAT = 'fit/1';

/** A point of the fit: x (power laws) or N and D (chinchilla); y null when the run gave no value. */
export const FitPointRecord = Type.Object({
  x: Type.Optional(Type.Number()),
  N: Type.Optional(Type.Number()),
  D: Type.Optional(Type.Number()),
  /** chinchilla with a repetition model: unique vectors, passes D / U, effective data. */
  U: Type.Optional(Type.Number()),
  passes: Type.Optional(Type.Number()),
  D_effective: Type.Optional(Type.Number()),
  y: Num,
  kept: Type.Boolean(),
  /** The filter that left the point out of the fit. */
  dropped_by: Type.Optional(Type.String()),
  /** log prediction - log y. */
  residual: Type.Optional(Num),
});
export type FitPointRecord = Static<typeof FitPointRecord>;

const CurveXY = Type.Object({ x: Type.Number(), y: Type.Number(), lo: Type.Optional(Num), hi: Type.Optional(Num) });

/** A row of the plotted law {x, y, lo, hi}; chinchilla has one curve per N instead: {N, points: [{x: D, ...}]}. */
export const CurveRow = Type.Object({
  x: Type.Optional(Type.Number()),
  y: Type.Optional(Type.Number()),
  lo: Type.Optional(Num),
  hi: Type.Optional(Num),
  N: Type.Optional(Type.Number()),
  points: Type.Optional(Type.Array(CurveXY)),
});
export type CurveRow = Static<typeof CurveRow>;

/**
 * The law at x (chinchilla: at N and D vectors trained on); `extrapolation`: x over the largest
 * fitted x (chinchilla: the larger of the N and D' ratios). With a repetition model, the effective
 * data D' the law was evaluated at and D's passes over the unique vectors available.
 */
export const PredictionRecord = Type.Object({
  x: Type.Optional(Type.Number()),
  N: Type.Optional(Type.Number()),
  D: Type.Optional(Type.Number()),
  y: Type.Number(),
  lo: Type.Optional(Num),
  hi: Type.Optional(Num),
  extrapolation: Type.Optional(Type.Number()),
  D_effective: Type.Optional(Type.Number()),
  passes: Type.Optional(Type.Number()),
  beyond_measured_passes: Type.Optional(Type.Boolean()),
});
export type PredictionRecord = Static<typeof PredictionRecord>;

/** Whether the data pin the law's parameters down (src/fit/identify.ts). */
export const IdentificationRecord = Type.Object({
  identified: Type.Boolean(),
  condition_number: Num,
  interval_spread: Type.Optional(Type.Record(Type.String(), Num)),
  points_per_parameter: Type.Optional(Type.Number()),
  span: Type.Optional(Type.Record(Type.String(), Type.Number())),
  reasons: Type.Array(Type.String()),
  design_warnings: Type.Optional(Type.Array(Type.String())),
  rule: Type.Optional(Type.String()),
});
export type IdentificationRecord = Static<typeof IdentificationRecord>;

/** lr-law: one width's optimum learning rate (src/fit/lr-optimum.ts). */
export const LrOptimumRecord = Type.Object({
  width: Type.Number(),
  best_swept: Num,
  optimum: Num,
  interval: Interval,
  edge: Type.Union([Type.Literal('lower'), Type.Literal('upper'), Type.Null()]),
  note: Nullable(Type.String()),
});
export type LrOptimumRecord = Static<typeof LrOptimumRecord>;

/** A value decided from a law, or from a stated fallback rule, then clamped (src/fit/decide.ts). */
export const DecisionRecord = Type.Object({
  name: Type.String(),
  value: Type.Number(),
  source: Type.Union([Type.Literal('law'), Type.Literal('fallback')]),
  law_value: Num,
  identified: Type.Boolean(),
  fallback_rule: Type.String(),
  clamped: Nullable(Type.Object({ from: Type.Number(), to: Type.Number(), rule: Type.String() })),
  reasons: Type.Array(Type.String()),
  /** One sentence per fallback, clamp or carried warning. */
  warnings: Type.Array(Type.String()),
  /** decide with unique_available: passes over the unique vectors, and whether beyond every measured run's. */
  passes: Type.Optional(Type.Number()),
  beyond_measured_passes: Type.Optional(Type.Boolean()),
});
export type DecisionRecord = Static<typeof DecisionRecord>;

export const FitFile = Type.Object({
  format: Type.Optional(Type.Literal(FIT_FORMAT)),
  law: Type.String(),
  formula: Type.Optional(Type.String()),
  x_label: Type.Optional(Type.String()),
  y_label: Type.Optional(Type.String()),
  /** chinchilla: the data variable's name (x_label is N's). */
  d_label: Type.Optional(Type.String()),
  /** null: the fit drove the parameter out of floating-point range (the law is then not identified). */
  params: Type.Record(Type.String(), Num),
  intervals: Type.Optional(Type.Record(Type.String(), Interval)),
  confidence: Type.Optional(Type.Number()),
  points: Type.Array(FitPointRecord),
  residuals: Type.Optional(Type.Array(Num)),
  goodness: Type.Optional(
    Type.Object({ r2: Type.Optional(Num), rmse_log: Type.Optional(Num), objective: Type.Optional(Num) }),
  ),
  predictions: Type.Optional(Type.Array(PredictionRecord)),
  curve: Type.Optional(Type.Array(CurveRow)),
  /** chinchilla: the compute-optimal data size for each requested N. */
  optimal_data: Type.Optional(Type.Array(Type.Unknown())),
  identification: Type.Optional(IdentificationRecord),
  /** chinchilla fitted in effective data (src/fit/repetition.ts). */
  repetition: Type.Optional(
    Type.Object({
      model: Type.String(),
      r_star: Type.Number(),
      unique_available: Type.Number(),
      max_measured_passes: Type.Number(),
    }),
  ),
  /**
   * The parameters of every bootstrap refit that was used (the intervals' draws), by the names of
   * `params`: the law and its interval anywhere, at a point not known when the law was fitted (the
   * report's prediction check at the final run's size and data). null: not finite.
   */
  bootstrap_params: Type.Optional(Type.Array(Type.Record(Type.String(), Num))),
  /** How it was fitted: loss, optimiser, bootstrap (informational; the report does not read them). */
  loss: Type.Optional(Type.Object({ kind: Type.String(), delta: Type.Optional(Type.Number()) })),
  optimizer: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  bootstrap: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  /** lr-law: the per-width optima and the decided lr. */
  optima: Type.Optional(Type.Array(LrOptimumRecord)),
  decision: Type.Optional(DecisionRecord),
  warnings: Type.Optional(Type.Array(Type.String())),
});
export type FitFile = Static<typeof FitFile>;
