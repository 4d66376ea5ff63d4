/**
 * `train-sae`: trains one JumpReLU SAE on an activation store (the seed notebook's recipe,
 * every hyperparameter a param with the seed's value as default) and exports it in the
 * SAELens layout. The params schema is src/sae/params.ts, the work src/sae/train.ts; this file is the contract.
 */
import { defineStage } from '../runtime/stage.js';
import { TrainSaeParams, conflictingParams } from '../sae/params.js';

export default defineStage({
  name: 'train-sae',
  version: '5',
  description: 'Train one JumpReLU sparse autoencoder and export it in the SAELens layout.',
  params: TrainSaeParams,
  heavy: true,
  resources: { gpu: 1 },
  outputs: {
    sae: {
      kind: 'dir',
      description: 'SAELens folder: cfg.json, sae_weights.safetensors (raw-activation units), metrics.json.',
    },
    metrics: { kind: 'file', description: 'metrics.jsonl: config line, train lines every log_every steps, eval line.' },
    eval: {
      kind: 'value',
      description: 'Held-out evaluation: {step, rows, mse, l0, fvu, dead_frac, loss, recovery_*}.',
    },
    loss: {
      kind: 'value',
      description:
        'Held-out training objective: mse + lambda * l0 (the final lambda). What the scaling laws fit: at ' +
        'a fixed lambda, MSE alone rewards denser codes.',
    },
    mse: {
      kind: 'value',
      description: 'Held-out reconstruction MSE (squared error summed over d_in, mean over rows) on normalised inputs.',
    },
    fvu: { kind: 'value', description: 'Held-out fraction of variance unexplained.' },
    l0: { kind: 'value', description: 'Held-out mean number of active features per row.' },
    d_sae: { kind: 'value', description: 'Number of features.' },
    n_samples: { kind: 'value', description: 'Training vectors seen: steps x batch_size.' },
    unique_samples: { kind: 'value', description: 'Distinct training vectors seen: min(n_samples, train_rows).' },
    passes: { kind: 'value', description: 'Passes (epochs) over the training split: n_samples / train_rows.' },
    train_rows: { kind: 'value', description: 'Rows of the training split (the store less the held-out rows).' },
    l0_on_target: {
      kind: 'value',
      description:
        'With target_l0: whether the held-out L0 ended within l0_tolerance of the target (false: not at ' +
        'matched sparsity; fit-law `on_target` leaves it out); null without a target.',
    },
    lambda: {
      kind: 'value',
      description: "Sparsity coefficient at the last step (the controller's when target_l0 is set).",
    },
    steps: { kind: 'value', description: 'Training steps.' },
    lr: { kind: 'value', description: 'Peak learning rate.' },
    backend: { kind: 'value', description: '{name, device, threads} of the compute engine that trained it.' },
  },
  checkParams: conflictingParams,
  inputFiles(p) {
    return [p.store, p.init_from, p.ground_truth].filter((x): x is string => typeof x === 'string');
  },
  async run(ctx) {
    const { runTrainSae } = await import('./train-sae-run.js');
    return runTrainSae(ctx);
  },
});
