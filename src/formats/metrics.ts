/**
 * metrics.jsonl (written by train-sae, read by the report): one record a line: `config`, `train`
 * (every log_every steps), `eval` (held-out), `run` (data and sparsity of the run). Version: the
 * config line's `format: 'sae-metrics/1'`; files written before the field existed are version 1,
 * so it is optional.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Nullable, Num } from './scalars.js';

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
