/**
 * The train-sae hyperparameters: one TypeBox schema, the single source of their names,
 * defaults and TypeScript type (the stage validates pipelines against it; the trainer takes
 * its static type as is).
 */
import { Type, type Static } from '@sinclair/typebox';
import { ENGINE_NAMES } from './engine.js';
import { DEFAULT_EVAL_ROWS } from '../data/store-format.js';

export const TrainSaeParams = Type.Object({
  store: Type.String({ description: 'Activation store folder (output of ingest / synthetic data).' }),
  d_in: Type.Optional(Type.Integer({ minimum: 1, description: "Expected input width; must equal the store's d." })),
  eval_rows: Type.Integer({
    minimum: 1,
    default: DEFAULT_EVAL_ROWS,
    description: 'Held-out rows at the end of the store (not trained on).',
  }),
  norm_scale: Type.Number({
    exclusiveMinimum: 0,
    default: 1,
    description: 'Inputs are divided by this (estimated mean norm; seed: 3.4). Folded into the exported weights.',
  }),
  d_sae: Type.Integer({ minimum: 1, default: 16384, description: 'Number of features (seed: 8 x 2048).' }),
  batch_size: Type.Integer({ minimum: 1, default: 1024 }),
  steps: Type.Optional(
    Type.Integer({ minimum: 1, description: 'Training steps (seed: 128000). Give steps or n_samples, not both.' }),
  ),
  n_samples: Type.Optional(
    Type.Number({ exclusiveMinimum: 0, description: 'Training vectors; steps = ceil(n_samples / batch_size).' }),
  ),
  max_n_samples: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      description: 'Cap on the training vectors (e.g. the FLOP budget when n_samples comes from a fitted law).',
    }),
  ),
  lr: Type.Number({ exclusiveMinimum: 0, default: 7e-5 }),
  lr_warmup_steps: Type.Integer({ minimum: 0, default: 1000 }),
  lr_decay: Type.Union([Type.Literal('cosine'), Type.Literal('none')], {
    default: 'cosine',
    description: 'After warm-up: cosine to 0 at the last step, or constant.',
  }),
  l0_coefficient: Type.Number({ minimum: 0, default: 4e-4, description: 'Maximum sparsity coefficient lambda.' }),
  l0_warmup_steps: Type.Optional(
    Type.Integer({
      minimum: 0,
      description: 'Steps over which lambda rises linearly from 0 (default: all steps, as the seed).',
    }),
  ),
  target_l0: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      description:
        'Train to this L0: after the lambda warm-up a controller steers lambda (multiplicatively, from ' +
        "l0_coefficient) so the run ends at this L0 (src/sae/sparsity.ts). Unset: the seed's fixed lambda.",
    }),
  ),
  l0_tolerance: Type.Number({
    exclusiveMinimum: 0,
    default: 0.1,
    description:
      'With target_l0: the held-out L0 must be within this relative tolerance of the target (reported, warned otherwise).',
  }),
  l0_controller_gain: Type.Number({
    exclusiveMinimum: 0,
    default: 0.005,
    description:
      'With target_l0: per-step change of log lambda per unit of log L0 error (clipped at 1), scaled by lr / peak lr.',
  }),
  l0_controller_damping: Type.Number({
    minimum: 0,
    default: 100,
    description:
      'With target_l0: derivative action, in steps: the controller adds this many steps of the L0 trend ' +
      'to its error, so lambda stops rising while L0 is already falling (no overshoot that kills ' +
      'latents). 0: a pure integral controller.',
  }),
  l0_controller_clip: Type.Number({
    exclusiveMinimum: 0,
    default: 1,
    description:
      'With target_l0: the error (log L0 error plus the damping term) is clipped to +-this, so a step changes ' +
      'log lambda by at most gain x clip: a larger gain with a smaller clip corrects small errors faster.',
  }),
  l0_smoothing_steps: Type.Number({
    minimum: 1,
    default: 20,
    description: 'With target_l0: time constant (steps) of the moving average of the batch L0 the controller sees.',
  }),
  resample_dead_every: Type.Integer({
    minimum: 0,
    default: 0,
    description:
      'Every this many steps, re-initialise latents dead for dead_window_samples towards badly ' +
      'reconstructed inputs (Bricken et al. 2023). 0: never (the seed).',
  }),
  resample_dead_until: Type.Number({
    minimum: 0,
    maximum: 1,
    default: 0.5,
    description: 'Resample only in this leading fraction of the run, so resampled latents settle before the end.',
  }),
  bandwidth: Type.Number({
    exclusiveMinimum: 0,
    default: 0.001,
    description: 'Rectangle-kernel width of the threshold straight-through estimator.',
  }),
  threshold_init: Type.Number({ exclusiveMinimum: 0, default: 0.001 }),
  apply_b_dec_to_input: Type.Boolean({
    default: true,
    description: 'Subtract b_dec from the input before encoding (pre-encoder bias).',
  }),
  seed: Type.Integer({ default: 0, description: 'Seeds the initialisation and the data order.' }),
  shuffle: Type.Boolean({ default: true }),
  backend: Type.Union([Type.Literal('auto'), ...ENGINE_NAMES.map((n) => Type.Literal(n))], {
    default: 'auto',
    description:
      'Compute engine. auto tries cuda, tensorflow (tfjs-node-gpu on a GPU), native (the OpenBLAS addon), ' +
      'wasm, cpu, and records which ran.',
  }),
  threads: Type.Optional(
    Type.Integer({
      minimum: 1,
      maximum: 256,
      description:
        'CPU threads. native: default all cores. wasm/cpu: worker threads, each training a slice of the ' +
        'features (model parallel), default 1.',
    }),
  ),
  workers: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 256, description: 'The old name of threads (still accepted).' }),
  ),
  allow_tf32: Type.Boolean({
    default: false,
    description: 'cuda only: TF32 tensor-core matmuls (faster, about 1e-3 relative precision); float32 otherwise.',
  }),
  log_every: Type.Integer({ minimum: 1, default: 100, description: 'Steps between metrics lines / progress updates.' }),
  dead_window_samples: Type.Number({
    minimum: 1,
    default: 1e6,
    description: 'A feature is dead if it fired on none of the last this-many training samples.',
  }),
  checkpoint_every: Type.Integer({
    minimum: 0,
    default: 1000,
    description: 'Steps between checkpoints in the work folder (0: none).',
  }),
  init_from: Type.Optional(Type.String({ description: 'SAELens JumpReLU folder to start from (continue training).' })),
  ground_truth: Type.Optional(
    Type.String({ description: 'safetensors file with `features` [n, d_in] (synthetic data): recovery metrics.' }),
  ),
  on_divergence: Type.Union([Type.Literal('fail'), Type.Literal('record')], {
    default: 'fail',
    description:
      'fail: a diverged run is an error (last good checkpoint kept). record: it is a result (loss, mse, ' +
      'fvu, l0 null; metrics and eval say at which step), so a learning-rate sweep survives its largest rates.',
  }),
  max_loss: Type.Number({
    exclusiveMinimum: 0,
    default: 1e4,
    description: 'Divergence guard: stop when the training loss exceeds this or is not finite.',
  }),
  max_memory_gb: Type.Optional(
    Type.Number({
      exclusiveMinimum: 0,
      description:
        'Refuse shapes estimated to need more (default: 80% of RAM; wasm also refuses more than its 4 GiB heap per thread).',
    }),
  ),
  model_name: Type.String({ default: 'meta-llama/Llama-3.2-1B', description: 'For cfg.json metadata.' }),
  hook_name: Type.String({ default: 'blocks.8.hook_mlp_out', description: 'For cfg.json metadata.' }),
  dataset_path: Type.String({ default: 'mech-interp-uam/llama-mlp8-outputs', description: 'For cfg.json metadata.' }),
  context_size: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
    default: null,
    description:
      'For cfg.json metadata: tokens per sequence of the text the activations were taken from. ' +
      "SAELens's evaluation tokenizes its text to this length and raises when it is null (unknown; the stage logs a warning).",
  }),
});
export type TrainSaeParams = Static<typeof TrainSaeParams>;

/**
 * Options that do not work together, one message each. Resampling with target_l0: a resampled
 * latent starts by firing on many inputs, the controller answers the L0 spike by raising lambda,
 * and the raised lambda kills the other latents (measured on the demo: lambda 0.03 -> 831, 94%
 * dead). Until resampling and the controller are made to cooperate, the combination is refused.
 * Takes the params as written (load time: a field may still be a reference's text).
 */
export function conflictingParams(p: { target_l0?: unknown; resample_dead_every?: unknown }): string[] {
  const resampling = typeof p.resample_dead_every === 'number' && p.resample_dead_every > 0;
  if (p.target_l0 === undefined || !resampling) return [];
  return [
    `target_l0 (${JSON.stringify(p.target_l0)}) and resample_dead_every (${p.resample_dead_every}) do not work ` +
      'together: each resampling makes L0 spike, the L0 controller answers with a larger lambda, and that kills ' +
      'the other latents (lambda 0.03 -> 831 and 94% dead latents in the demo); set resample_dead_every: 0 or ' +
      'drop target_l0 (a fixed lambda)',
  ];
}
