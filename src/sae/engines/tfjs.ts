/**
 * The tfjs engines: the reference step (JumpReluSae) on one tfjs backend, in process, and the
 * same step split by feature over worker threads (tfjs-parallel.ts) for the single-threaded
 * wasm/cpu backends. The math (engine.ts) is written here once: `encode` is the forward pass,
 * `featureGradients` the closed-form backward, `adamUpdate` PyTorch's Adam over ADAM_GROUPS.
 *
 * Why hand-written gradients: tfjs autodiff of a linear layer uses matMul with transposeA /
 * transposeB, which on the wasm backend is 10-50x slower than a plain matMul. The SAE's
 * gradients are closed-form, so one step is five plain matMuls with explicit transposes, plus
 * elementwise work. test/sae/gradients.test.ts checks them against tfjs autodiff (and the
 * straight-through threshold gradient against the seed's formula).
 *
 * Which tfjs backend: @tensorflow/tfjs-node(-gpu) are optional (libtensorflow is downloaded at
 * install time), so they are imported inside try/catch; whatever loads, its own tf namespace
 * is used so that ops run where its backend is registered. tfjs has one backend per process.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as tfTypes from '@tensorflow/tfjs';
import type { EngineInfo, EngineOptions, EngineState, EvalStats, SaeEngine } from '../engine.js';
import {
  ADAM_EPS,
  ADAM_GROUPS,
  PARAM_NAMES,
  mapParams,
  paramShape,
  type AdamGroup,
  type AdamState,
  type ParamName,
  type SaeConfig,
  type SaeWeights,
  type StepStats,
} from '../jumprelu.js';

export type Tf = typeof import('@tensorflow/tfjs');
type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;
export type TfjsBackend = 'tensorflow' | 'wasm' | 'cpu';

// ---------------------------------------------------------------------------------------
// Loading a tfjs backend
// ---------------------------------------------------------------------------------------

export interface LoadedTf {
  tf: Tf;
  name: TfjsBackend;
  /** "GPU (@tensorflow/tfjs-node-gpu)", "CPU (wasm)", ... */
  device: string;
  onGpu: boolean;
}

let loaded: LoadedTf | undefined;

/**
 * Initialises (once per process or worker) the tfjs backend `name`. 'tensorflow' tries
 * tfjs-node-gpu then tfjs-node; `onGpu` says whether it really sees a GPU (tfjs-node-gpu
 * silently runs on the CPU when CUDA is missing). Throws with the reason when it cannot load.
 */
export async function loadTf(name: TfjsBackend): Promise<LoadedTf> {
  if (loaded?.name === name) return loaded;
  if (loaded?.name === 'tensorflow')
    throw new Error(`tfjs backend '${name}' requested after 'tensorflow' was initialised in this process`);
  if (name === 'tensorflow') {
    const reasons: string[] = [];
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        const tf = (await import(pkg)) as Tf;
        await tf.setBackend('tensorflow');
        await tf.ready();
        const onGpu = Boolean((tf.backend() as any).binding?.isUsingGpuDevice?.());
        loaded = { tf, name, onGpu, device: `${onGpu ? 'GPU' : 'CPU'} (${pkg})` };
        return loaded;
      } catch (e) {
        reasons.push(
          (e as { code?: string }).code === 'ERR_MODULE_NOT_FOUND' ? `${pkg} not installed` : `${pkg}: ${firstLine(e)}`,
        );
      }
    }
    throw new Error(reasons.join('; '));
  }
  const tf = (await import('@tensorflow/tfjs')) as Tf;
  if (name === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // In Node the .wasm binaries must be given as file paths of the package's dist folder.
    const require = createRequire(import.meta.url);
    wasm.setWasmPaths(join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm')), '/'));
  }
  if (!(await tf.setBackend(name))) throw new Error(`tf.setBackend("${name}") failed`);
  await tf.ready();
  loaded = { tf, name, onGpu: false, device: name === 'wasm' ? 'CPU (tfjs wasm)' : 'CPU (tfjs plain JS)' };
  return loaded;
}

export function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}

// ---------------------------------------------------------------------------------------
// The step, written once (call these inside tf.tidy)
// ---------------------------------------------------------------------------------------

/** The parameters a feature owns (a shard holds a slice of each; b_dec is shared by all features). */
export type FeatureParam = Exclude<ParamName, 'b_dec'>;
export const FEATURE_PARAMS: FeatureParam[] = ['W_enc', 'b_enc', 'W_dec', 'log_threshold'];

/** The forward pass up to the features: x' = x - b_dec, z = x' W_enc + b_enc, s = 1{z > thr}, f = z s. */
export function encode(tf: Tf, p: Record<FeatureParam, Tensor>, x: Tensor, bDec: Tensor | null) {
  const xc = bDec ? x.sub(bDec) : x;
  const z = tf.matMul(xc, p.W_enc).add(p.b_enc);
  const thr = p.log_threshold.exp();
  const s = z.greater(thr).cast('float32');
  const f = z.mul(s);
  return { xc, z, thr, s, f };
}

/** Column sums over the batch as [1, B] x [B, n] matMuls: tfjs reduces axis 0 by transposing first, which on wasm costs more. */
function columnSummer(tf: Tf, B: number): (m: Tensor) => Tensor {
  const ones = tf.ones([1, B]);
  return (m) => tf.matMul(ones, m).reshape([-1]);
}

/**
 * The closed-form backward pass of the feature-owned parameters, given g = d rec / d x_hat
 * [B, d_in] and the forward pass `enc`. The decoder gradient has its component parallel to
 * each (unit-norm) decoder row removed, as the seed's hook does. Also returns the batch's
 * firings per feature and W_enc (sum_b dz), the pre-encoder path of b_dec's gradient.
 */
export function featureGradients(
  tf: Tf,
  p: Record<FeatureParam, Tensor>,
  enc: ReturnType<typeof encode>,
  g: Tensor,
  lambda: number,
  bandwidth: number,
) {
  const colSum = columnSummer(tf, g.shape[0]);
  const df = tf.matMul(g, tf.transpose(p.W_dec));
  const dz = df.mul(enc.s); // the gate passes no gradient to z (straight-through: zero)
  const b_enc = colSum(dz);
  const grads: Record<FeatureParam, Tensor> = {
    W_enc: tf.matMul(tf.transpose(enc.xc), dz),
    b_enc,
    W_dec: projectDecoderGrad(p.W_dec, tf.matMul(tf.transpose(enc.f), g)),
    log_threshold: logThresholdGrad(enc.z, enc.thr, df, lambda, bandwidth, colSum),
  };
  // sum_b (dz W_enc^T) = W_enc (sum_b dz): a matrix-vector product instead of a matMul.
  const encoderPathOfBDec = tf.matMul(p.W_enc, b_enc.reshape([-1, 1])).reshape([-1]);
  return { grads, fired: colSum(enc.s), encoderPathOfBDec };
}

/**
 * d loss / d log_threshold. s enters the loss through f = z * s (incoming grad df * z) and
 * through L0 (incoming grad lambda / B); the seed's rectangle kernel: d s / d thr = -1/bw where
 * |relu(z) - thr| < bw/2, else 0. So d thr = -1/bw [sum_b w df z + lambda/B sum_b w] (w the
 * window indicator), and d log_thr = d thr * thr.
 */
function logThresholdGrad(
  z: Tensor,
  thr: Tensor,
  df: Tensor,
  lambda: number,
  bw: number,
  colSum: (m: Tensor) => Tensor,
): Tensor {
  const B = z.shape[0];
  const inWindow = z
    .relu()
    .sub(thr)
    .abs()
    .less(bw / 2)
    .cast('float32');
  return colSum(inWindow.mul(df).mul(z))
    .add(colSum(inWindow).mul(lambda / B))
    .mul(-1 / bw)
    .mul(thr);
}

/** The decoder gradient without its component parallel to each (unit-norm) decoder row. */
function projectDecoderGrad(W_dec: Tensor, dW_dec: Tensor): Tensor {
  return dW_dec.sub(W_dec.mul(dW_dec).sum(1, true).mul(W_dec));
}

/** Parameters with their Adam moments, all or some of them (a shard lacks b_dec; the coordinator has only it). */
export interface AdamVars<N extends ParamName> {
  p: Record<N, Variable>;
  m: Record<N, Variable>;
  v: Record<N, Variable>;
}

/**
 * Adam over ADAM_GROUPS, PyTorch's rule (bias correction on both moments, eps outside the
 * sqrt), for the parameters present in `grads`; `steps` holds each group's new step count.
 */
export function adamUpdate<N extends ParamName>(
  vars: AdamVars<N>,
  grads: Record<N, Tensor>,
  steps: number[],
  lr: number,
): void {
  ADAM_GROUPS.forEach((group, gi) => {
    for (const name of group.params as N[]) {
      if (name in grads) adamStep(vars.p[name], vars.m[name], vars.v[name], grads[name], group, steps[gi], lr);
    }
  });
}

function adamStep(p: Variable, m: Variable, v: Variable, grad: Tensor, group: AdamGroup, t: number, lr: number): void {
  const { beta1, beta2 } = group;
  const stepSize = (lr * group.lrScale) / (1 - beta1 ** t);
  const sqrtBc2 = Math.sqrt(1 - beta2 ** t);
  const mNew = beta1 === 0 ? grad : m.mul(beta1).add(grad.mul(1 - beta1));
  const vNew = v.mul(beta2).add(grad.square().mul(1 - beta2));
  p.assign(p.sub(mNew.div(vNew.sqrt().div(sqrtBc2).add(ADAM_EPS)).mul(stepSize)));
  m.assign(mNew);
  v.assign(vNew);
}

/** Each feature's decoder row back to unit norm. */
export function renormaliseRows(W: Variable): void {
  W.assign(W.div(W.square().sum(1, true).sqrt()));
}

/** sinceFired[j] = 0 if feature j fired in the batch, else sinceFired[j] + B. */
export function updateSinceFired(tf: Tf, sinceFired: Variable, fired: Tensor, B: number): void {
  sinceFired.assign(tf.where(fired.greater(0), tf.zerosLike(fired), sinceFired.add(B)));
}

// ---------------------------------------------------------------------------------------
// The reference model: every parameter on one tfjs backend
// ---------------------------------------------------------------------------------------

/**
 * The model on a tfjs backend: parameters, Adam moments and a dead-feature counter live in
 * tf.Variables; `trainStep` does forward, backward and the Adam update inside one tf.tidy.
 */
export class JumpReluSae {
  readonly p: Record<ParamName, Variable>;
  readonly m: Record<ParamName, Variable>;
  readonly v: Record<ParamName, Variable>;
  /** Adam step count per group (all equal in practice; kept per group as PyTorch does). */
  adamSteps: number[];
  /** Samples seen since each feature last fired (for the dead-feature fraction). */
  readonly sinceFired: Variable;

  constructor(
    readonly tf: Tf,
    readonly cfg: SaeConfig,
    w: SaeWeights,
    adam?: AdamState,
    sinceFired?: Float32Array,
  ) {
    const make = (name: ParamName, data?: Float32Array) =>
      tf.variable(data ? tf.tensor(data, paramShape(name, cfg)) : tf.zeros(paramShape(name, cfg)), false);
    this.p = mapParams((n) => make(n, w[n]));
    this.m = mapParams((n) => make(n, adam?.m[n]));
    this.v = mapParams((n) => make(n, adam?.v[n]));
    this.adamSteps = adam ? [...adam.steps] : ADAM_GROUPS.map(() => 0);
    this.sinceFired = tf.variable(sinceFired ? tf.tensor1d(sinceFired) : tf.zeros([cfg.dSae]), false);
  }

  /** One optimisation step on a batch x [B, d_in] (already normalised); the batch's statistics from before the update. */
  trainStep(x: Tensor, lambda: number, lr: number): StepStats {
    const tf = this.tf;
    const out = tf.tidy(() => {
      const { grads, rec, l0, fired } = this.gradients(x, lambda);
      this.adamSteps = this.adamSteps.map((t) => t + 1);
      adamUpdate(this, grads, this.adamSteps, lr);
      renormaliseRows(this.p.W_dec);
      updateSinceFired(tf, this.sinceFired, fired, x.shape[0]);
      const centred = x.sub(x.mean(0));
      return tf.stack([rec, l0, centred.square().sum()]);
    });
    const [rec, l0, totalVar] = out.dataSync();
    out.dispose();
    return { rec, l0, totalVar };
  }

  /** Loss terms and closed-form gradients of every parameter (call inside tf.tidy). */
  gradients(x: Tensor, lambda: number) {
    const tf = this.tf;
    const B = x.shape[0];
    const enc = encode(tf, this.p, x, this.cfg.applyBDecToInput ? this.p.b_dec : null);
    const err = tf.matMul(enc.f, this.p.W_dec).add(this.p.b_dec).sub(x);
    const rec = err.square().sum().div(B);
    const g = err.mul(2 / B); // d rec / d x_hat
    const { grads, fired, encoderPathOfBDec } = featureGradients(tf, this.p, enc, g, lambda, this.cfg.bandwidth);
    // b_dec: the output bias, and (when subtracted from the input) the encoder path.
    const b_dec = this.cfg.applyBDecToInput ? g.sum(0).sub(encoderPathOfBDec) : g.sum(0);
    return { grads: { ...grads, b_dec } as Record<ParamName, Tensor>, rec, l0: fired.sum().div(B), fired };
  }

  /** Forward only: summed squared error, active count, firings per feature. */
  evaluate(x: Tensor): EvalStats {
    const tf = this.tf;
    const [stats, firedT] = tf.tidy(() => {
      const enc = encode(tf, this.p, x, this.cfg.applyBDecToInput ? this.p.b_dec : null);
      const err = tf.matMul(enc.f, this.p.W_dec).add(this.p.b_dec).sub(x);
      const fired = enc.s.sum(0);
      return [tf.stack([err.square().sum(), fired.sum()]), fired];
    });
    const [sqErr, active] = stats.dataSync();
    const fired = new Float32Array(firedT.dataSync() as Float32Array);
    stats.dispose();
    firedT.dispose();
    return { sqErr, active, fired };
  }

  /** Fraction of features that have not fired in the last `window` samples. */
  deadFraction(window: number): number {
    const t = this.tf.tidy(() => this.sinceFired.greaterEqual(window).cast('float32').mean());
    const v = t.dataSync()[0];
    t.dispose();
    return v;
  }

  state(): EngineState {
    const read = (vars: Record<ParamName, Variable>) => mapParams((n) => vars[n].dataSync() as Float32Array);
    return {
      weights: read(this.p),
      adam: { m: read(this.m), v: read(this.v), steps: [...this.adamSteps] },
      sinceFired: this.sinceFired.dataSync() as Float32Array,
    };
  }

  setState(s: EngineState): void {
    for (const n of PARAM_NAMES) {
      this.p[n].assign(this.tf.tensor(s.weights[n], paramShape(n, this.cfg)));
      this.m[n].assign(this.tf.tensor(s.adam.m[n], paramShape(n, this.cfg)));
      this.v[n].assign(this.tf.tensor(s.adam.v[n], paramShape(n, this.cfg)));
    }
    this.adamSteps = [...s.adam.steps];
    this.sinceFired.assign(this.tf.tensor1d(s.sinceFired));
  }

  dispose(): void {
    for (const n of PARAM_NAMES) [this.p[n], this.m[n], this.v[n]].forEach((t) => t.dispose());
    this.sinceFired.dispose();
  }
}

// ---------------------------------------------------------------------------------------
// The engines
// ---------------------------------------------------------------------------------------

/** JumpReluSae in this thread, fed with plain arrays. */
class TfjsEngine implements SaeEngine {
  constructor(
    private readonly sae: JumpReluSae,
    readonly info: EngineInfo,
  ) {}

  trainStep(x: Float32Array, rows: number, lambda: number, lr: number): StepStats {
    return this.withBatch(x, rows, (t) => this.sae.trainStep(t, lambda, lr));
  }

  evaluate(x: Float32Array, rows: number): EvalStats {
    return this.withBatch(x, rows, (t) => this.sae.evaluate(t));
  }

  private withBatch<T>(x: Float32Array, rows: number, fn: (t: Tensor) => T): T {
    const { dIn } = this.sae.cfg;
    const t = this.sae.tf.tensor2d(x.subarray(0, rows * dIn), [rows, dIn]);
    try {
      return fn(t);
    } finally {
      t.dispose();
    }
  }

  deadFraction(windowSamples: number): number {
    return this.sae.deadFraction(windowSamples);
  }

  snapshot(): EngineState {
    return this.sae.state();
  }

  restore(state: EngineState): void {
    this.sae.setState(state);
  }

  dispose(): void {
    this.sae.dispose();
  }
}

/**
 * A tfjs engine on backend `name`: in process when o.threads is 1, else the features split
 * over o.threads worker threads (wasm/cpu only: tensorflow has its own threads).
 */
export async function createTfjsEngine(name: TfjsBackend, o: EngineOptions): Promise<SaeEngine> {
  const { tf, device } = await loadTf(name);
  if (o.threads > 1) {
    if (name === 'tensorflow')
      throw new Error('train-sae: threads > 1 is for the wasm/cpu backends (tensorflow uses its own threads)');
    const { ParallelTfjsEngine } = await import('./tfjs-parallel.js');
    const info = { name, device: `${device.slice(0, -1)}; features split over worker threads)`, threads: o.threads };
    return ParallelTfjsEngine.create(tf, name, o, info);
  }
  const sae = new JumpReluSae(tf, o.cfg, o.init.weights, o.init.adam, o.init.sinceFired);
  return new TfjsEngine(sae, { name, device, threads: 1 });
}
