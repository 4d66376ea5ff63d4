/**
 * The `train-sae` stage's run(): the run's files (store, init_from, ground truth) opened and
 * checked, the derived values (steps) resolved, then trainSae() with the params as they are.
 * Imported by train-sae.ts inside run(), so that loading the stage list stays cheap.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { StageContext, StageOutputs } from '../runtime/stage.js';
import { conflictingParams, type TrainSaeParams as Params } from '../sae/params.js';
import { openStore, BatchLoader } from '../data/loader.js';
import { DivergenceError, trainSae, type TrainData, type TrainRun } from '../sae/train.js';
import { readSaeLens, unfoldNormalisation } from '../sae/export.js';
import { readSafetensors } from '../sae/safetensors.js';
import { trainingHooks } from '../sae/train-hooks.js';
import { runRecord } from '../sae/run-record.js';

/** Seed notebook: 128,000 steps when neither steps nor n_samples is given. */
export const SEED_STEPS = 128_000;

export function resolveSteps(p: Pick<Params, 'steps' | 'n_samples' | 'max_n_samples' | 'batch_size'>): number {
  if (p.steps !== undefined && p.n_samples !== undefined) {
    throw new Error(`train-sae: give steps (${p.steps}) or n_samples (${p.n_samples}), not both`);
  }
  // A data size extrapolated by a law can be far beyond what the run may spend: the cap wins.
  const samples = p.n_samples === undefined ? undefined : Math.min(p.n_samples, p.max_n_samples ?? Infinity);
  if (samples !== undefined) return Math.max(1, Math.ceil(samples / p.batch_size));
  return Math.min(p.steps ?? SEED_STEPS, Math.ceil((p.max_n_samples ?? Infinity) / p.batch_size));
}

export async function runTrainSae(ctx: StageContext<Params>): Promise<StageOutputs> {
  const p = ctx.params;
  const at = (path: string) => resolve(ctx.pipelineDir, path);
  const conflicts = conflictingParams(p);
  if (conflicts.length) throw new Error(`train-sae: ${conflicts.join('; ')}`);
  const steps = resolveSteps(p);
  if (p.n_samples !== undefined && p.max_n_samples !== undefined && p.n_samples > p.max_n_samples) {
    ctx.log(`n_samples ${p.n_samples.toPrecision(3)} capped at max_n_samples ${p.max_n_samples.toPrecision(3)}`);
  }
  const data = openTrainData(at(p.store), p);
  if (p.d_in !== undefined && p.d_in !== data.dIn) {
    throw new Error(`train-sae: d_in=${p.d_in} but the store ${at(p.store)} has d=${data.dIn}`);
  }
  let initFrom: TrainRun['initFrom'];
  if (p.init_from) {
    const src = readSaeLens(at(p.init_from));
    if (src.dIn !== data.dIn || src.dSae !== p.d_sae) {
      throw new Error(
        `train-sae: init_from ${at(p.init_from)} has d_in=${src.dIn}, d_sae=${src.dSae}; this run has d_in=${data.dIn}, d_sae=${p.d_sae}`,
      );
    }
    if (src.applyBDecToInput !== p.apply_b_dec_to_input) {
      throw new Error(
        `train-sae: init_from has apply_b_dec_to_input=${src.applyBDecToInput}, this run ${p.apply_b_dec_to_input}`,
      );
    }
    initFrom = unfoldNormalisation(src.weights, p.norm_scale, src.dIn, src.dSae);
  }
  let groundTruth: TrainRun['groundTruth'];
  if (p.ground_truth) {
    const f = readSafetensors(at(p.ground_truth)).tensors.features;
    if (f?.shape.length !== 2 || f.shape[1] !== data.dIn) {
      throw new Error(
        `train-sae: ground_truth ${at(p.ground_truth)} needs a tensor 'features' [n, ${data.dIn}], found ${f ? `[${f.shape}]` : 'none'}`,
      );
    }
    groundTruth = { features: f.data, n: f.shape[0] };
  }
  // The runner's GPU slot (ctx.env.CUDA_VISIBLE_DEVICES) is already in process.env: train-sae is heavy, so it runs in a child
  // process started with ctx.env, and the CUDA engine sees only the granted devices.
  const trainRows = openStore(at(p.store)).rows - p.eval_rows;
  const resampleRows = new BatchLoader(openStore(at(p.store)), {
    scale: 1 / p.norm_scale,
    evalRows: p.eval_rows,
    batchSize: p.batch_size,
    seed: p.seed + 1,
    shuffle: true,
    split: 'train',
    prefetch: 0,
  });
  const hooked = trainingHooks(p, steps, p.l0_warmup_steps ?? steps, data.dIn, resampleRows, (m) => ctx.log(m));
  try {
    const r = await trainSae(
      { params: p, steps, initFrom, groundTruth, instance: ctx.instance },
      data,
      ctx,
      hooked.hooks,
    );
    const record = runRecord(
      p,
      steps,
      trainRows,
      r.eval.l0,
      hooked.summary(),
      join(ctx.outDir, r.metricsFile),
      ctx.log,
    );
    return {
      sae: r.saeDir,
      metrics: r.metricsFile,
      eval: { ...r.eval, ...record },
      loss: r.eval.total_loss,
      mse: r.eval.mse,
      fvu: r.eval.fvu,
      l0: r.eval.l0,
      d_sae: p.d_sae,
      n_samples: steps * p.batch_size,
      steps,
      lr: p.lr,
      backend: { ...r.backend },
      unique_samples: record.unique_samples,
      passes: record.passes,
      train_rows: trainRows,
      lambda: record.lambda_end,
      l0_on_target: record.l0_within_tolerance,
    };
  } catch (e) {
    if (!(e instanceof DivergenceError) || p.on_divergence !== 'record') throw e;
    return recordDivergence(ctx, steps, e);
  } finally {
    data.train.close();
    resampleRows.close();
  }
}

/**
 * A diverged run as a result: its training curve up to the divergence, an eval line that says
 * where it diverged, null metrics (fit-law drops null points), and no weights worth exporting.
 */
function recordDivergence(ctx: StageContext<Params>, steps: number, e: DivergenceError): StageOutputs {
  const p = ctx.params;
  ctx.log(`${e.message}\non_divergence: record: this run's result is its divergence`);
  const evalResult = {
    step: e.step,
    diverged_at_step: e.step,
    diverged_loss: Number.isFinite(e.loss) ? e.loss : String(e.loss),
    mse: null,
    l0: null,
    fvu: null,
    dead_frac: null,
    total_loss: null,
    recovery_mean_max_cos: null,
    recovery_frac_above_0_9: null,
  };
  const curve = join(ctx.workDir, 'metrics.jsonl');
  const metrics =
    (existsSync(curve) ? readFileSync(curve, 'utf8') : '') + JSON.stringify({ type: 'eval', ...evalResult }) + '\n';
  writeFileSync(join(ctx.outDir, 'metrics.jsonl'), metrics);
  mkdirSync(join(ctx.outDir, 'sae'), { recursive: true });
  writeFileSync(
    join(ctx.outDir, 'sae', 'diverged.json'),
    JSON.stringify({ ...evalResult, message: e.message }, null, 2) + '\n',
  );
  return {
    sae: 'sae',
    metrics: 'metrics.jsonl',
    eval: evalResult,
    loss: null,
    mse: null,
    fvu: null,
    l0: null,
    d_sae: p.d_sae,
    n_samples: steps * p.batch_size,
    steps,
    lr: p.lr,
    backend: null,
    unique_samples: null,
    passes: null,
    train_rows: null,
    lambda: null,
    l0_on_target: null,
  };
}

/** Training batches (shuffled, split 'train') and the held-out split in order, both divided by norm_scale. */
export function openTrainData(
  dir: string,
  p: Pick<Params, 'batch_size' | 'seed' | 'shuffle' | 'norm_scale' | 'eval_rows'>,
): TrainData {
  const store = openStore(dir);
  const common = { scale: 1 / p.norm_scale, evalRows: p.eval_rows };
  const train = new BatchLoader(store, {
    ...common,
    batchSize: p.batch_size,
    seed: p.seed,
    shuffle: p.shuffle,
    split: 'train',
  });
  return {
    dIn: store.d,
    train,
    async *evalBatches() {
      const batchSize = Math.min(p.batch_size, p.eval_rows);
      // One pass, in order: prefetching would read batches past the end of the split for nothing.
      const loader = new BatchLoader(store, { ...common, batchSize, shuffle: false, split: 'eval', prefetch: 0 });
      try {
        for (let done = 0; done < p.eval_rows; done += batchSize) {
          yield { x: await loader.next(), rows: Math.min(batchSize, p.eval_rows - done) };
        }
      } finally {
        loader.close();
      }
    },
  };
}
