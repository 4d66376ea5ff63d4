/**
 * The files and records stages hand to each other, each defined once here as a TypeBox
 * schema: producers build values of the schema's static type, consumers validate what they
 * read against the schema (`readFormat`), so a malformed file is an error naming the file,
 * the line where there are lines, and the field.
 *
 * - fit.json (fit-law, lr-law): a fitted law, its points, intervals, predictions, curve.
 * - metrics.jsonl (train-sae): one record a line: `config`, `train` (every log_every steps),
 *   `eval` (held-out), `run` (data and sparsity of the run).
 * - store.json (ingest): the header of an activation store (data.bin beside it).
 * - decision records (decide, lr-law `decision` value outputs), read by the report.
 *
 * Versions: fit.json and the metrics config line carry `format` ('fit/1', 'sae-metrics/1'),
 * store.json `format: 'activation-store/1'`. A reader refuses a version it does not know.
 * Files written before fit.json and metrics.jsonl carried the field are version 1, so the
 * field is optional there.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value, type ValueError } from '@sinclair/typebox/value';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
/** A number in JSON: NaN and infinities are written as null. */
const Num = Nullable(Type.Number());
/** [lo, hi], or null where the bootstrap gave no interval. */
const Interval = Nullable(Type.Tuple([Type.Number(), Type.Number()]));

// ---------------------------------------------------------------------------------------
// fit.json
// ---------------------------------------------------------------------------------------

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

/** The law at x (chinchilla: at N and D); `extrapolation`: x over the largest fitted x. */
export const PredictionRecord = Type.Object({
  x: Type.Optional(Type.Number()),
  N: Type.Optional(Type.Number()),
  D: Type.Optional(Type.Number()),
  y: Type.Number(),
  lo: Type.Optional(Num),
  hi: Type.Optional(Num),
  extrapolation: Type.Optional(Type.Number()),
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

// ---------------------------------------------------------------------------------------
// metrics.jsonl
// ---------------------------------------------------------------------------------------

export const METRICS_FORMAT = 'sae-metrics/1';

/** The first line: the run's params, with the engine that ran (`backend`, `device`, `threads`). */
export const MetricsConfig = Type.Object({
  type: Type.Literal('config'),
  format: Type.Optional(Type.Literal(METRICS_FORMAT)),
  instance: Type.Optional(Type.String()),
  backend: Type.Optional(Type.String()),
  device: Type.Optional(Type.String()),
  threads: Type.Optional(Type.Number()),
});
/** The config line holds every train-sae param besides the fields named here. */
export type MetricsConfig = Static<typeof MetricsConfig> & Record<string, unknown>;

/** Means over the last log_every steps (null: not a number, a diverging run). */
export const MetricsTrain = Type.Object({
  type: Type.Literal('train'),
  step: Type.Number(),
  samples: Type.Optional(Type.Number()),
  loss: Type.Optional(Num),
  mse: Type.Optional(Num),
  l0: Type.Optional(Num),
  fvu: Type.Optional(Num),
  dead_frac: Type.Optional(Num),
  lr: Type.Optional(Num),
  lambda: Type.Optional(Num),
});
export type MetricsTrain = Static<typeof MetricsTrain>;

const Scalar = Type.Union([Type.Number(), Type.String(), Type.Boolean(), Type.Null()]);

/** The held-out evaluation; also the stage's `eval` output and the SAE folder's metrics.json. */
export const EvalSummary = Type.Object({
  step: Type.Number(),
  rows: Type.Number(),
  mse: Type.Number(),
  l0: Type.Number(),
  fvu: Type.Number(),
  dead_frac: Type.Number(),
  /** mse + lambda(last step) * l0. */
  total_loss: Type.Number(),
  /** Ground truth (synthetic data only): mean best cosine of each true feature, fraction above 0.9. */
  recovery_mean_max_cos: Num,
  recovery_frac_above_0_9: Num,
});
export type EvalSummary = Static<typeof EvalSummary>;

/**
 * An eval line as a reader takes it: the summary's fields, or those of a diverged run
 * (null metrics, `diverged_at_step`, `diverged_loss`), and any other scalars.
 */
export const MetricsEval = Type.Object(
  {
    type: Type.Literal('eval'),
    step: Type.Optional(Type.Number()),
    mse: Type.Optional(Num),
    l0: Type.Optional(Num),
    fvu: Type.Optional(Num),
    dead_frac: Type.Optional(Num),
    diverged_at_step: Type.Optional(Type.Number()),
    diverged_loss: Type.Optional(Type.Union([Type.Number(), Type.String()])),
  },
  { additionalProperties: Scalar },
);
export type MetricsEval = Static<typeof MetricsEval> & Record<string, Static<typeof Scalar>>;

/** What a run's data and sparsity were (src/sae/run-record.ts). */
export const RunRecord = Type.Object({
  /** Rows of the training split, distinct vectors seen, and passes over the split. */
  train_rows: Type.Number(),
  unique_samples: Type.Number(),
  passes: Type.Number(),
  target_l0: Num,
  l0_tolerance: Num,
  l0_within_tolerance: Nullable(Type.Boolean()),
  lambda_end: Num,
  resampled: Type.Number(),
});
export type RunRecord = Static<typeof RunRecord>;

export const MetricsRun = Type.Object({ type: Type.Literal('run'), ...RunRecord.properties });
export type MetricsRun = Static<typeof MetricsRun>;

/** Record types a reader knows; other types (added by later versions) are not its business. */
export const METRICS_RECORDS = {
  config: MetricsConfig,
  train: MetricsTrain,
  eval: MetricsEval,
  run: MetricsRun,
} as const;

// ---------------------------------------------------------------------------------------
// store.json
// ---------------------------------------------------------------------------------------

export const STORE_FORMAT = 'activation-store/1';

export const StoreDtype = Type.Union([Type.Literal('float16'), Type.Literal('float32')]);
export type StoreDtype = Static<typeof StoreDtype>;

/** One source file the rows came from, in order. */
export const StoreSource = Type.Object({
  path: Type.String(),
  rows: Type.Integer({ minimum: 0 }),
  sha256: Type.String(),
});
export type StoreSource = Static<typeof StoreSource>;

/** data.bin holds rows * d values, row-major, little-endian: float16 bits or float32. */
export const StoreHeader = Type.Object({
  format: Type.Literal(STORE_FORMAT),
  rows: Type.Integer({ minimum: 0 }),
  d: Type.Integer({ minimum: 1 }),
  dtype: StoreDtype,
  byteOrder: Type.Literal('little'),
  sources: Type.Array(StoreSource),
  /** The parquet column the activations were read from. */
  column: Type.String(),
});
export type StoreHeader = Static<typeof StoreHeader>;

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/**
 * `value` as the schema's type, or an error naming the first field that does not match:
 * `WHERE: points[0]: field "y" must be a number or null (got "high")`.
 */
export function readFormat<T extends TSchema>(schema: T, value: unknown, where: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const first = Value.Errors(schema, value).First()!;
  const got = `(got ${JSON.stringify(first.value) ?? 'nothing'})`;
  const parts = first.path.split('/').slice(1);
  if (parts.length === 0) throw new Error(`${where}: expected a JSON object ${got}`);
  const last = parts.pop()!;
  const parent = parts.map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i ? `.${p}` : p)).join('');
  if (/^\d+$/.test(last)) throw new Error(`${where}: ${parent}[${last}] ${expected(first)} ${got}`);
  throw new Error(`${where}: ${parent ? `${parent}: ` : ''}field "${last}" ${expected(first)} ${got}`);
}

/** "must be a number", 'must be "float16" or "float32"'... from the schema that failed. */
function expected(error: ValueError): string {
  const s = error.schema;
  if (error.value === undefined) return 'is missing';
  const literals = (s.anyOf ?? [s]).filter((x: TSchema) => 'const' in x).map((x: TSchema) => JSON.stringify(x.const));
  if (literals.length && literals.length === (s.anyOf ?? [s]).length) return `must be ${literals.join(' or ')}`;
  const types = (s.anyOf ?? [s]).map((x: TSchema) => x.type).filter(Boolean);
  if (types.length && s.minimum === undefined) return `must be ${types.map(article).join(' or ')}`;
  return error.message.replace(/^Expected/, 'must be').toLowerCase();
}

function article(type: string): string {
  return type === 'null' ? 'null' : `${/^[aeiou]/.test(type) ? 'an' : 'a'} ${type}`;
}
