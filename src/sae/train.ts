/**
 * Training one JumpReLU SAE, top to bottom: check the inputs, choose the engine (backend.ts)
 * and check its memory, start from a checkpoint / an existing SAE / the seed's init, run the
 * steps (schedules, divergence guard, metrics, checkpoints), evaluate on the held-out split,
 * export in the SAELens layout. The step itself is the engine's (engine.ts); this file only
 * orchestrates, and never knows which engine runs.
 *
 * metrics.jsonl holds no timing (throughput goes to the log and the progress line), so that a
 * re-run with the same weights writes the same file and downstream stages keep their cache.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chooseEngine } from './backend.js';
import { readWeights, type EngineInfo, type SaeEngine } from './engine.js';
import { initialWeights, type SaeConfig, type SaeShape, type SaeWeights, type StepStats } from './jumprelu.js';
import type { TrainSaeParams } from './params.js';
import { checkMemory } from './memory.js';
import { lambdaAt, lrFactor } from './schedules.js';
import { mulberry32 } from '../random.js';
import { loadCheckpoint, saveEngineCheckpoint } from './checkpoint.js';
import { EvalAccumulator, MetricsLog, recovery } from './metrics.js';
import { foldNormalisation, writeSaeLens } from './export.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { METRICS_FORMAT, type EvalSummary, type MetricsConfig, type MetricsTrain } from '../formats/metrics.js';

/** The loss went non-finite or above max_loss: a property of the hyperparameters, not bad input. */
export class DivergenceError extends Error {
  constructor(
    readonly step: number,
    readonly loss: number,
    message: string,
  ) {
    super(message);
  }
}

/** A stream of training batches (the data loader, or in-memory data for tests and benchmarks). */
export interface BatchSource {
  next(): Promise<Float32Array>;
  state(): unknown;
  restore(state: any): void;
  close(): void;
}

export interface TrainData {
  dIn: number;
  /** Batches of `batch_size` rows, already divided by the norm scale. */
  train: BatchSource;
  /** The held-out rows, in batches (the last may be short), already divided by the norm scale. */
  evalBatches(): AsyncIterable<{ x: Float32Array; rows: number }>;
}

/** One training run: the stage's params as validated (the schema is the one list of hyperparameters) and what derives from them. */
export interface TrainRun {
  params: TrainSaeParams;
  /** Resolved from steps / n_samples / max_n_samples. */
  steps: number;
  /** Start from these (normalised-unit) weights instead of the seed's init. */
  initFrom?: SaeWeights;
  groundTruth?: { features: Float32Array; n: number };
  /** The stage instance, for the metrics' config line. */
  instance: string;
}

export interface TrainIo {
  workDir: string;
  outDir: string;
  log(m: string): void;
  progress(p: { fraction?: number; message?: string; rate?: number; unit?: string; etaSeconds?: number }): void;
  signal: AbortSignal;
}

/** Extension points of the loop (e.g. a target-L0 controller for lambda, dead-feature resampling). */
export interface TrainHooks {
  /** The sparsity coefficient of `step` instead of the schedule's `scheduled` (called before each step). */
  lambda?(step: number, scheduled: number): number;
  /** After each step, with its statistics (from before the update); may edit the engine (snapshot / restore). */
  afterStep?(s: {
    step: number;
    stats: StepStats;
    lambda: number;
    lr: number;
    engine: SaeEngine;
  }): void | Promise<void>;
  /** The hooks' own state, saved in checkpoints and handed back on resume. */
  state?(): unknown;
  restore?(state: unknown): void;
}

export interface TrainResult {
  eval: EvalSummary;
  backend: EngineInfo;
  /** Folder (relative to outDir) and file names of the outputs. */
  saeDir: string;
  metricsFile: string;
  weights: SaeWeights;
}

export async function trainSae(
  run: TrainRun,
  data: TrainData,
  io: TrainIo,
  hooks: TrainHooks = {},
): Promise<TrainResult> {
  const p = run.params;
  const shape: SaeShape = { dIn: data.dIn, dSae: p.d_sae };
  checkInputs(run, shape);
  const choice = await chooseEngine(p.backend, p.threads ?? p.workers);
  checkMemory(
    choice.name,
    { ...shape, batch: p.batch_size, threads: choice.threads },
    p.max_memory_gb === undefined ? undefined : p.max_memory_gb * 2 ** 30,
  );

  const checkpoints = new Checkpoints(io.workDir, shape, run, data.train, hooks);
  const { engine, resumedStep } = await startEngine(choice, run, shape, checkpoints);
  io.log(`backend: ${describeEngine(engine.info)}${choice.why}`);
  if (resumedStep !== null) io.log(`resuming from checkpoint at step ${resumedStep}/${run.steps}`);
  let weights: SaeWeights, evalResult: EvalSummary;
  try {
    const metrics = new MetricsLog(join(io.workDir, 'metrics.jsonl'));
    metrics.start(configRecord(run, data.dIn, engine.info), resumedStep);
    await trainLoop({ run, data, io, hooks, engine, metrics, checkpoints, startStep: resumedStep ?? 0 });
    await engine.endTraining?.(); // the optimiser state is not needed any more: free it before reading the weights
    weights = await readWeights(engine);
    evalResult = await evaluateHeldOut(engine, run, data, weights, hooks);
    metrics.write({ type: 'eval', ...evalResult });
  } finally {
    await engine.dispose(); // before the export, which needs only the weights: the peak stays the training's
  }
  const saeDir = exportSae(io, run, data.dIn, weights, evalResult, engine.info);
  return { eval: evalResult, backend: engine.info, saeDir, metricsFile: 'metrics.jsonl', weights };
}

/**
 * The engine, holding the weights to start from: our own checkpoint if this run was interrupted,
 * else init_from or the seed's init. A function of its own so that the initial weights (as large
 * as the model itself) are garbage once the engine has its copy, not alive for the whole training.
 */
async function startEngine(
  choice: Awaited<ReturnType<typeof chooseEngine>>,
  run: TrainRun,
  shape: SaeShape,
  checkpoints: Checkpoints,
): Promise<{ engine: SaeEngine; resumedStep: number | null }> {
  const p = run.params;
  const resumed = checkpoints.load();
  const cfg: SaeConfig = { ...shape, applyBDecToInput: p.apply_b_dec_to_input, bandwidth: p.bandwidth };
  const init = resumed?.init ?? { weights: run.initFrom ?? initialWeights(shape, p.threshold_init, checkpoints.rng) };
  const initDisposable = init.weights !== run.initFrom; // ours, not the caller's
  const engine = await choice.create({ cfg, init, initDisposable, allowTf32: p.allow_tf32, batchSize: p.batch_size });
  return { engine, resumedStep: resumed?.step ?? null };
}

interface Loop {
  run: TrainRun;
  data: TrainData;
  io: TrainIo;
  hooks: TrainHooks;
  engine: SaeEngine;
  metrics: MetricsLog;
  checkpoints: Checkpoints;
  startStep: number;
}

/** The training loop: one engine step per batch, a metrics line every log_every steps, a checkpoint every checkpoint_every. */
async function trainLoop({ run, data, io, hooks, engine, metrics, checkpoints, startStep }: Loop): Promise<void> {
  const p = run.params;
  const B = p.batch_size;
  const l0WarmupSteps = p.l0_warmup_steps ?? run.steps;
  let window = new TrainWindow();
  const t0 = performance.now();
  for (let step = startStep; step < run.steps; step++) {
    if (io.signal.aborted) {
      await checkpoints.save(engine, step);
      throw new Error(
        `train-sae: aborted at step ${step}/${run.steps}; checkpoint saved, the next run resumes from it`,
      );
    }
    const x = await data.train.next();
    checkBatch(x, B, data.dIn, step);
    const scheduled = lambdaAt(step, l0WarmupSteps, p.l0_coefficient);
    const lambda = hooks.lambda ? hooks.lambda(step, scheduled) : scheduled;
    const lr = p.lr * lrFactor(step, p.lr_warmup_steps, run.steps, p.lr_decay);
    const stats = await engine.trainStep(x, B, lambda, lr);
    checkDivergence(stats, step, lambda, lr, p.max_loss, checkpoints);
    window.add(stats, lambda, B);
    await hooks.afterStep?.({ step, stats, lambda, lr, engine });

    const done = step + 1;
    if (done % p.log_every === 0 || done === run.steps) {
      const record = {
        type: 'train' as const,
        step: done,
        samples: done * B,
        ...window.means(),
        dead_frac: await engine.deadFraction(p.dead_window_samples),
        lr,
        lambda,
      } satisfies MetricsTrain;
      metrics.write(record);
      io.progress(window.progress(done, run.steps, B, record));
      window = new TrainWindow();
    }
    if (p.checkpoint_every > 0 && done % p.checkpoint_every === 0 && done < run.steps)
      await checkpoints.save(engine, done);
  }
  const seconds = (performance.now() - t0) / 1000;
  const samples = (run.steps - startStep) * B;
  io.log(
    `trained ${run.steps - startStep} steps in ${seconds.toFixed(1)} s (${(samples / seconds).toFixed(0)} ` +
      `samples/s on ${engine.info.name})`,
  );
}

/** Sums over the steps since the last metrics line; the wall clock is only for the progress line. */
class TrainWindow {
  private steps = 0;
  private rec = 0;
  private l0 = 0;
  private fvu = 0;
  private lambda = 0;
  private readonly t0 = performance.now();

  add(st: StepStats, lambda: number, B: number): void {
    this.steps++;
    this.rec += st.rec;
    this.l0 += st.l0;
    this.lambda = lambda;
    this.fvu += st.totalVar > 0 ? (st.rec * B) / st.totalVar : NaN;
  }

  means() {
    const n = this.steps;
    return { loss: this.rec / n + this.lambda * (this.l0 / n), mse: this.rec / n, l0: this.l0 / n, fvu: this.fvu / n };
  }

  progress(done: number, total: number, B: number, r: { loss: number; mse: number; l0: number; dead_frac: number }) {
    const secs = (performance.now() - this.t0) / 1000;
    const samplesPerS = (this.steps * B) / secs;
    return {
      fraction: done / total,
      rate: samplesPerS,
      unit: 'samples',
      etaSeconds: ((total - done) * B) / samplesPerS,
      message:
        `step ${done}/${total} ${(this.steps / secs).toFixed(2)} steps/s loss ${r.loss.toPrecision(4)} ` +
        `mse ${r.mse.toPrecision(4)} L0 ${r.l0.toFixed(1)} dead ${(100 * r.dead_frac).toFixed(1)}%`,
    };
  }
}

/** The run's checkpoints in its workDir: what a resume must match, the loader's cursor, the hooks' state. */
class Checkpoints {
  /** The init's random stream; checkpoints record its state after the init (a resumed run keeps the one it was given). */
  readonly rng: ReturnType<typeof mulberry32>;
  private resumedRngState: number | null = null;
  lastStep: number | null = null;
  private readonly fingerprint: Record<string, unknown>;

  constructor(
    readonly workDir: string,
    readonly shape: SaeShape,
    run: TrainRun,
    private readonly loader: BatchSource,
    private readonly hooks: TrainHooks,
  ) {
    const p = run.params;
    this.fingerprint = {
      ...shape,
      batch: p.batch_size,
      steps: run.steps,
      seed: p.seed,
      applyBDecToInput: p.apply_b_dec_to_input,
    };
    this.rng = mulberry32(p.seed);
  }

  /** The interrupted run's state, restoring the loader and hooks, or null for a fresh start. */
  load() {
    const ckpt = loadCheckpoint(this.workDir, this.fingerprint);
    if (!ckpt) return null;
    this.loader.restore(ckpt.state.loader);
    this.hooks.restore?.(ckpt.state.hooks);
    this.resumedRngState = ckpt.state.rng;
    this.lastStep = ckpt.state.step;
    return { step: ckpt.state.step, init: { weights: ckpt.weights, adam: ckpt.adam, sinceFired: ckpt.sinceFired } };
  }

  async save(engine: SaeEngine, step: number): Promise<void> {
    const state = {
      step,
      loader: this.loader.state(),
      rng: this.resumedRngState ?? this.rng.state(),
      fingerprint: this.fingerprint,
      hooks: this.hooks.state?.(),
    };
    await saveEngineCheckpoint(
      this.workDir,
      this.shape,
      engine,
      state,
      this.lastStep === null ? 'none' : `step ${this.lastStep}`,
    );
    this.lastStep = step;
  }
}

/** "native on CPU (OpenBLAS 0.3.21 SkylakeX), 2 threads". */
export function describeEngine(e: { name: string; device: string; threads: number }): string {
  return `${e.name} on ${e.device}, ${e.threads} thread${e.threads === 1 ? '' : 's'}`;
}

/** The first metrics line: the params, with `backend` the engine that ran (not the requested "auto"). */
function configRecord(run: TrainRun, dIn: number, engine: EngineInfo): Omit<MetricsConfig, 'type'> {
  // Input paths are where the cache happened to place the inputs (they change with the
  // checkout and with upstream code); the cache key already records their content.
  const { store: _store, init_from: _initFrom, ground_truth: _groundTruth, ...p } = run.params;
  return {
    format: METRICS_FORMAT,
    ...p,
    steps: run.steps,
    n_samples: run.steps * p.batch_size,
    instance: run.instance,
    d_in: dIn,
    d_sae: p.d_sae,
    batch_size: p.batch_size,
    lr: p.lr,
    lambda: p.l0_coefficient,
    backend: engine.name,
    device: engine.device,
    threads: engine.threads,
  };
}

async function evaluateHeldOut(
  engine: SaeEngine,
  run: TrainRun,
  data: TrainData,
  weights: SaeWeights,
  hooks: TrainHooks,
): Promise<EvalSummary> {
  const p = run.params;
  const acc = new EvalAccumulator(data.dIn, p.d_sae);
  for await (const { x, rows } of data.evalBatches()) {
    checkBatch(x, rows, data.dIn, run.steps, 'eval');
    acc.add(x, rows, await engine.evaluate(x, rows));
  }
  const ev = acc.result();
  const gt = run.groundTruth;
  const rcv = gt ? recovery(gt.features, gt.n, weights.W_dec, p.d_sae, data.dIn) : null;
  const scheduledEnd = lambdaAt(run.steps - 1, p.l0_warmup_steps ?? run.steps, p.l0_coefficient);
  const lambdaEnd = hooks.lambda ? hooks.lambda(run.steps - 1, scheduledEnd) : scheduledEnd;
  return {
    step: run.steps,
    rows: ev.rows,
    mse: ev.mse,
    l0: ev.l0,
    fvu: ev.fvu,
    dead_frac: ev.dead_frac,
    total_loss: ev.mse + lambdaEnd * ev.l0,
    recovery_mean_max_cos: rcv?.recovery_mean_max_cos ?? null,
    recovery_frac_above_0_9: rcv?.recovery_frac_above_0_9 ?? null,
  };
}

/** The SAELens folder (normalisation folded in) with metrics.json, and metrics.jsonl beside it; returns the folder's name. */
function exportSae(
  io: TrainIo,
  run: TrainRun,
  dIn: number,
  weights: SaeWeights,
  evalResult: EvalSummary,
  engine: EngineInfo,
): string {
  const p = run.params;
  const saeDir = 'sae';
  if (p.context_size === null)
    io.log('warning: context_size is not set: cfg.json says null, and SAELens evaluation raises on it');
  writeSaeLens(join(io.outDir, saeDir), foldNormalisation(weights, p.norm_scale), {
    dIn,
    dSae: p.d_sae,
    applyBDecToInput: p.apply_b_dec_to_input,
    modelName: p.model_name,
    hookName: p.hook_name,
    datasetPath: p.dataset_path,
    contextSize: p.context_size,
    extra: {
      norm_scale: p.norm_scale,
      trained_steps: run.steps,
      trained_samples: run.steps * p.batch_size,
      backend: engine.name,
    },
  });
  writeFileAtomic(join(io.outDir, saeDir, 'metrics.json'), JSON.stringify(evalResult, null, 2) + '\n');
  mkdirSync(io.outDir, { recursive: true });
  copyFileSync(join(io.workDir, 'metrics.jsonl'), join(io.outDir, 'metrics.jsonl'));
  return saeDir;
}

/** Checks that must fail before any training starts. */
function checkInputs(run: TrainRun, { dIn, dSae }: SaeShape): void {
  if (!Number.isInteger(run.steps) || run.steps < 1)
    throw new Error(`train-sae: steps must be a positive integer, got ${run.steps}`);
  const { threads, workers } = run.params;
  if (threads !== undefined && workers !== undefined && threads !== workers) {
    throw new Error(
      `train-sae: threads (${threads}) and workers (${workers}, its old name) disagree; give threads only`,
    );
  }
  if (!run.initFrom) return;
  const want = { W_enc: dIn * dSae, W_dec: dSae * dIn, b_enc: dSae, b_dec: dIn, log_threshold: dSae };
  for (const [name, n] of Object.entries(want)) {
    const have = run.initFrom[name as keyof SaeWeights].length;
    if (have !== n)
      throw new Error(
        `train-sae: init_from ${name} has ${have} values, this run (d_in=${dIn}, d_sae=${dSae}) needs ${n}`,
      );
  }
}

function checkDivergence(
  st: StepStats,
  step: number,
  lambda: number,
  lr: number,
  maxLoss: number,
  checkpoints: Checkpoints,
): void {
  const loss = st.rec + lambda * st.l0;
  if (Number.isFinite(loss) && loss <= maxLoss) return;
  const last = checkpoints.lastStep === null ? 'none' : `step ${checkpoints.lastStep} in ${checkpoints.workDir}`;
  throw new DivergenceError(
    step,
    loss,
    `train-sae: loss diverged at step ${step}: loss=${loss} (reconstruction ${st.rec}, L0 ${st.l0}, ` +
      `lr ${lr}, max_loss ${maxLoss}); last good checkpoint: ${last}`,
  );
}

function checkBatch(x: Float32Array, rows: number, dIn: number, step: number, what = 'training'): void {
  if (x.length < rows * dIn)
    throw new Error(`train-sae: ${what} batch at step ${step} has ${x.length} values, expected ${rows * dIn}`);
  for (let i = 0; i < rows * dIn; i++) {
    const v = x[i];
    if (v - v !== 0) {
      // NaN or +-Infinity
      throw new Error(
        `train-sae: ${what} batch at step ${step} contains ${v} (row ${Math.floor(i / dIn)} of the batch, ` +
          `column ${i % dIn}); the store has non-finite activations`,
      );
    }
  }
}
