/**
 * Training one JumpReLU SAE, top to bottom: check the inputs, pick a backend, start from a
 * checkpoint / an existing SAE / the seed's init, run the steps (schedules, divergence guard,
 * metrics, checkpoints), evaluate on the held-out split, export in the SAELens layout.
 * The math is in jumprelu.ts; this file only orchestrates.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { totalmem } from 'node:os';
import { selectBackend, type BackendName } from './backend.js';
import { JumpReluSae, initialWeights, estimateTrainingBytes, type AdamState, type SaeConfig, type SaeWeights, type StepStats } from './jumprelu.js';
import { ParallelSae } from './parallel.js';
import type { Tf } from './backend.js';
import { lambdaAt, lrFactor } from './schedules.js';
import { mulberry32 } from '../random.js';
import { loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import { EvalAccumulator, MetricsLog, recovery } from './metrics.js';
import { foldNormalisation, writeSaeLens } from './export.js';
import { writeFileAtomic } from '../util/atomic-write.js';

/** A stream of training batches (the data loader, or in-memory data for tests and benchmarks). */
/** The loss went non-finite or above max_loss: a property of the hyperparameters, not bad input. */
export class DivergenceError extends Error {
  constructor(readonly step: number, readonly loss: number, message: string) {
    super(message);
  }
}

export interface BatchSource {
  next(): Promise<Float32Array>;
  state(): unknown;
  restore(state: any): void;
  close(): void;
}

export interface TrainData {
  dIn: number;
  /** Batches of `batchSize` rows, already divided by the norm scale. */
  train: BatchSource;
  /** The held-out rows, in batches (the last may be short), already divided by the norm scale. */
  evalBatches(): AsyncIterable<{ x: Float32Array; rows: number }>;
}

export interface TrainOptions {
  dSae: number;
  batchSize: number;
  steps: number;
  lr: number;
  lrWarmupSteps: number;
  lrDecay: 'cosine' | 'none';
  l0Coefficient: number;
  l0WarmupSteps: number;
  bandwidth: number;
  thresholdInit: number;
  applyBDecToInput: boolean;
  seed: number;
  backend: BackendName;
  /** Worker threads, each owning a slice of the features (wasm/cpu only); 1 = in-process. */
  workers: number;
  logEvery: number;
  deadWindowSamples: number;
  /** 0: no periodic checkpoints (one is still written when aborted). */
  checkpointEvery: number;
  /** Inputs were divided by this; folded into the exported weights. */
  normScale: number;
  /** A finite loss above this counts as divergence. */
  maxLoss: number;
  /** Default: defaultMemoryLimit(backend actually selected). */
  maxMemoryBytes?: number;
  /** Start from these (normalised-unit) weights instead of the seed's init. */
  initFrom?: SaeWeights;
  groundTruth?: { features: Float32Array; n: number };
  /** Written into cfg.json metadata and the first metrics line. */
  meta: { modelName: string; hookName: string; datasetPath: string; instance: string; config: Record<string, unknown> };
}

export interface TrainIo {
  workDir: string;
  outDir: string;
  log(m: string): void;
  progress(p: { fraction?: number; message?: string; rate?: number; unit?: string; etaSeconds?: number }): void;
  signal: AbortSignal;
}

export interface EvalResult {
  step: number;
  rows: number;
  mse: number;
  l0: number;
  fvu: number;
  dead_frac: number;
  /** mse + lambda(last step) * l0. */
  total_loss: number;
  recovery_mean_max_cos: number | null;
  recovery_frac_above_0_9: number | null;
}

export interface TrainResult {
  eval: EvalResult;
  backend: { name: string; device: string };
  /** Folder (relative to outDir) and file names of the outputs. */
  saeDir: string;
  metricsFile: string;
  weights: SaeWeights;
}

export async function trainSae(o: TrainOptions, data: TrainData, io: TrainIo): Promise<TrainResult> {
  const { dIn } = data;
  const { dSae, batchSize: B } = o;
  const backend = await selectBackend(o.backend, io.log);
  checkBeforeTraining(o, dIn, o.maxMemoryBytes ?? defaultMemoryLimit(backend.name));
  const tf = backend.tf;
  const cfg: SaeConfig = { dIn, dSae, applyBDecToInput: o.applyBDecToInput, bandwidth: o.bandwidth };

  // Resume from our own checkpoint if this run was interrupted; else init_from / fresh init.
  const fingerprint = { dIn, dSae, batch: B, steps: o.steps, seed: o.seed, applyBDecToInput: o.applyBDecToInput };
  const ckpt = loadCheckpoint(io.workDir, fingerprint);
  const rng = mulberry32(o.seed);
  let startStep = 0;
  if (ckpt) {
    data.train.restore(ckpt.state.loader);
    startStep = ckpt.state.step;
    io.log(`resuming from checkpoint at step ${startStep}/${o.steps}`);
  }
  const init = ckpt ? ckpt.weights : o.initFrom ?? initialWeights({ dIn, dSae }, o.thresholdInit, rng);
  if (o.workers > 1 && backend.name === 'tensorflow') throw new Error('train-sae: workers > 1 is for the wasm/cpu backends (tensorflow uses its own threads)');
  const sae: Model = o.workers > 1
    ? await ParallelSae.create(o.workers, backend.name as BackendName, cfg, init, ckpt?.adam, ckpt?.sinceFired)
    : new LocalSae(tf, new JumpReluSae(tf, cfg, init, ckpt?.adam, ckpt?.sinceFired));
  if (o.workers > 1) io.log(`model parallel: ${o.workers} worker threads, ${Math.ceil(dSae / o.workers)} features each`);
  try {
    return await trainLoop();
  } finally {
    await sae.dispose();
  }

  async function trainLoop(): Promise<TrainResult> {
  const rngState = ckpt ? ckpt.state.rng : rng.state();
  let lastCheckpointStep = ckpt ? startStep : null;
  const checkpoint = async (step: number) => {
    const snap = await sae.snapshot();
    const weights = snap.weights;
    for (const [name, arr] of Object.entries(weights)) {
      if (!allFinite(arr)) throw new Error(`train-sae: parameter ${name} is not finite after step ${step}; not checkpointing (last good checkpoint: step ${lastCheckpointStep ?? 'none'})`);
    }
    saveCheckpoint(io.workDir, { dIn, dSae }, {
      state: { step, adamSteps: snap.adam.steps, loader: data.train.state(), rng: rngState, fingerprint },
      weights, adam: snap.adam, sinceFired: snap.sinceFired,
    });
    lastCheckpointStep = step;
  };

  const metrics = new MetricsLog(join(io.workDir, 'metrics.jsonl'));
  // The params first: `backend` must record the backend actually used, not the requested "auto".
  metrics.start({ ...o.meta.config, instance: o.meta.instance, d_in: dIn, d_sae: dSae, batch_size: B, steps: o.steps,
    n_samples: o.steps * B, lr: o.lr, lambda: o.l0Coefficient, backend: backend.name, device: backend.device }, ckpt ? startStep : null);

  // The training loop.
  const l0Warmup = o.l0WarmupSteps;
  let window = { steps: 0, rec: 0, l0: 0, fvu: 0, t0: performance.now() };
  const t0 = performance.now();
  for (let step = startStep; step < o.steps; step++) {
    if (io.signal.aborted) {
      await checkpoint(step);
      throw new Error(`train-sae: aborted at step ${step}/${o.steps}; checkpoint saved, the next run resumes from it`);
    }
    const batch = await data.train.next();
    checkBatch(batch, B, dIn, step);
    const lambda = lambdaAt(step, l0Warmup, o.l0Coefficient);
    const lr = o.lr * lrFactor(step, o.lrWarmupSteps, o.steps, o.lrDecay);
    const st = await sae.trainStep(batch, B, lambda, lr);
    const loss = st.rec + lambda * st.l0;
    if (!Number.isFinite(loss) || loss > o.maxLoss) {
      throw new DivergenceError(step, loss, `train-sae: loss diverged at step ${step}: loss=${loss} (reconstruction ${st.rec}, L0 ${st.l0}, ` +
        `lr ${lr}, max_loss ${o.maxLoss}); last good checkpoint: ${lastCheckpointStep === null ? 'none' : `step ${lastCheckpointStep} in ${io.workDir}`}`);
    }
    window.steps++;
    window.rec += st.rec;
    window.l0 += st.l0;
    window.fvu += st.totalVar > 0 ? (st.rec * B) / st.totalVar : NaN;

    const done = step + 1;
    if (done % o.logEvery === 0 || done === o.steps) {
      const secs = (performance.now() - window.t0) / 1000;
      const samplesPerS = (window.steps * B) / secs;
      const rec = {
        type: 'train', step: done, samples: done * B,
        loss: window.rec / window.steps + lambda * (window.l0 / window.steps),
        mse: window.rec / window.steps, l0: window.l0 / window.steps, fvu: window.fvu / window.steps,
        dead_frac: await sae.deadFraction(o.deadWindowSamples), lr, lambda, samples_per_s: samplesPerS,
      };
      metrics.write(rec);
      const eta = ((o.steps - done) * B) / samplesPerS;
      io.progress({
        fraction: done / o.steps, rate: samplesPerS, unit: 'samples', etaSeconds: eta,
        message: `step ${done}/${o.steps} ${(window.steps / secs).toFixed(2)} steps/s loss ${rec.loss.toPrecision(4)} ` +
          `mse ${rec.mse.toPrecision(4)} L0 ${rec.l0.toFixed(1)} dead ${(100 * rec.dead_frac).toFixed(1)}%`,
      });
      window = { steps: 0, rec: 0, l0: 0, fvu: 0, t0: performance.now() };
    }
    if (o.checkpointEvery > 0 && done % o.checkpointEvery === 0 && done < o.steps) await checkpoint(done);
  }
  const trainSeconds = (performance.now() - t0) / 1000;
  io.log(`trained ${o.steps - startStep} steps in ${trainSeconds.toFixed(1)} s ` +
    `(${(((o.steps - startStep) * B) / trainSeconds).toFixed(0)} samples/s on ${backend.name})`);

  // Evaluation on the held-out split.
  const acc = new EvalAccumulator(dIn, dSae);
  for await (const { x, rows } of data.evalBatches()) {
    checkBatch(x, rows, dIn, o.steps, 'eval');
    acc.add(x, rows, await sae.evaluate(x, rows));
  }
  const ev = acc.result();
  const { weights } = await sae.snapshot();
  const rcv = o.groundTruth ? recovery(tf, o.groundTruth.features, o.groundTruth.n, weights.W_dec, dSae, dIn) : null;
  const lambdaEnd = lambdaAt(o.steps - 1, l0Warmup, o.l0Coefficient);
  const evalResult: EvalResult = {
    step: o.steps, rows: ev.rows, mse: ev.mse, l0: ev.l0, fvu: ev.fvu, dead_frac: ev.dead_frac,
    total_loss: ev.mse + lambdaEnd * ev.l0,
    recovery_mean_max_cos: rcv?.recovery_mean_max_cos ?? null,
    recovery_frac_above_0_9: rcv?.recovery_frac_above_0_9 ?? null,
  };
  metrics.write({ type: 'eval', ...evalResult });

  // Export: SAELens folder (normalisation folded in) + metrics.
  const saeDir = 'sae';
  writeSaeLens(join(io.outDir, saeDir), foldNormalisation(weights, o.normScale), {
    dIn, dSae, applyBDecToInput: o.applyBDecToInput, modelName: o.meta.modelName, hookName: o.meta.hookName,
    datasetPath: o.meta.datasetPath,
    extra: { norm_scale: o.normScale, trained_steps: o.steps, trained_samples: o.steps * B, backend: backend.name },
  });
  writeFileAtomic(join(io.outDir, saeDir, 'metrics.json'), JSON.stringify(evalResult, null, 2) + '\n');
  mkdirSync(io.outDir, { recursive: true });
  copyFileSync(join(io.workDir, 'metrics.jsonl'), join(io.outDir, 'metrics.jsonl'));
  return { eval: evalResult, backend: { name: backend.name, device: backend.device }, saeDir, metricsFile: 'metrics.jsonl', weights };
  }
}

/** What the loop needs from a model: in-process (JumpReluSae) or split over workers (ParallelSae). */
interface Model {
  trainStep(x: Float32Array, B: number, lambda: number, lr: number): Promise<StepStats> | StepStats;
  evaluate(x: Float32Array, rows: number): Promise<{ sqErr: number; active: number; fired: Float32Array }> | { sqErr: number; active: number; fired: Float32Array };
  deadFraction(window: number): Promise<number> | number;
  snapshot(): Promise<Snapshot> | Snapshot;
  dispose(): Promise<void> | void;
}

interface Snapshot {
  weights: SaeWeights;
  adam: AdamState;
  sinceFired: Float32Array;
}

/** JumpReluSae on the main thread, fed with plain arrays. */
class LocalSae implements Model {
  constructor(private readonly tf: Tf, private readonly sae: JumpReluSae) {}

  trainStep(batch: Float32Array, B: number, lambda: number, lr: number): StepStats {
    const x = this.tf.tensor2d(batch, [B, this.sae.cfg.dIn]);
    try {
      return this.sae.trainStep(x, lambda, lr);
    } finally {
      x.dispose();
    }
  }

  evaluate(batch: Float32Array, rows: number) {
    const x = this.tf.tensor2d(batch.subarray(0, rows * this.sae.cfg.dIn), [rows, this.sae.cfg.dIn]);
    try {
      return this.sae.evaluate(x);
    } finally {
      x.dispose();
    }
  }

  deadFraction(window: number): number {
    return this.sae.deadFraction(window);
  }

  snapshot(): Snapshot {
    return { weights: this.sae.weights(), adam: this.sae.adamState(), sinceFired: this.sae.sinceFiredArray() };
  }

  dispose(): void {
    this.sae.dispose();
  }
}

/** Shape and memory checks that must fail before any training starts. */
function checkBeforeTraining(o: TrainOptions, dIn: number, maxMemoryBytes: number): void {
  const need = estimateTrainingBytes(dIn, o.dSae, o.batchSize);
  if (need > maxMemoryBytes) {
    throw new Error(`train-sae: d_sae=${o.dSae}, d_in=${dIn}, batch_size=${o.batchSize} needs about ${gib(need)} GiB ` +
      `(weights, 2 Adam moments, step temporaries), more than the limit of ${gib(maxMemoryBytes)} GiB (max_memory_gb); ` +
      `use a smaller d_sae or batch_size`);
  }
  if (o.initFrom) {
    const want = { W_enc: dIn * o.dSae, W_dec: o.dSae * dIn, b_enc: o.dSae, b_dec: dIn, log_threshold: o.dSae };
    for (const [name, n] of Object.entries(want)) {
      const have = o.initFrom[name as keyof SaeWeights].length;
      if (have !== n) throw new Error(`train-sae: init_from ${name} has ${have} values, this run (d_in=${dIn}, d_sae=${o.dSae}) needs ${n}`);
    }
  }
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`train-sae: steps must be a positive integer, got ${o.steps}`);
}

function checkBatch(x: Float32Array, rows: number, dIn: number, step: number, what = 'training'): void {
  if (x.length < rows * dIn) throw new Error(`train-sae: ${what} batch at step ${step} has ${x.length} values, expected ${rows * dIn}`);
  for (let i = 0; i < rows * dIn; i++) {
    const v = x[i];
    if (v - v !== 0) { // NaN or +-Infinity
      throw new Error(`train-sae: ${what} batch at step ${step} contains ${v} (row ${Math.floor(i / dIn)} of the batch, ` +
        `column ${i % dIn}); the store has non-finite activations`);
    }
  }
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] - a[i] !== 0) return false;
  return true;
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(2);
}

/** Default memory limit: wasm32 can address 4 GiB; elsewhere 80% of the machine's memory. */
export function defaultMemoryLimit(backend: string): number {
  const machine = 0.8 * totalmem();
  return backend === 'wasm' ? Math.min(machine, 3.5 * 2 ** 30) : machine;
}

