/**
 * The JumpReLU SAE: parameters, forward pass, closed-form gradients, Adam and the decoder
 * constraint. This is the math; the training loop lives in train.ts.
 *
 * Why hand-written gradients: tfjs autodiff of a linear layer uses matMul with transposeA /
 * transposeB, which on the wasm backend is 10-50x slower than a plain matMul (design.md).
 * The SAE's gradients are closed-form, so one step is five plain matMuls with explicit
 * transposes, plus elementwise work. test/sae/gradients.test.ts checks them against tfjs
 * autodiff (and the straight-through threshold gradient against the seed's formula).
 *
 * Shapes (PyTorch/SAELens convention): W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in]
 * (one unit-norm row per feature), b_dec [d_in], log_threshold [d_sae].
 *
 *   x' = x - b_dec (if applyBDecToInput)     z = x' W_enc + b_enc     thr = exp(log_threshold)
 *   s = 1{z > thr}    f = z * s    x_hat = f W_dec + b_dec
 *   rec = mean_b sum_d (x_hat - x)^2    L0 = mean_b sum_j s    loss = rec + lambda * L0
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './backend.js';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

export interface SaeShape {
  dIn: number;
  dSae: number;
}

export interface SaeConfig extends SaeShape {
  applyBDecToInput: boolean;
  /** Width of the rectangle kernel of the threshold's straight-through estimator. */
  bandwidth: number;
}

/** Plain arrays of the parameters (normalised-input units, log of the threshold). */
export interface SaeWeights {
  W_enc: Float32Array;
  b_enc: Float32Array;
  W_dec: Float32Array;
  b_dec: Float32Array;
  log_threshold: Float32Array;
}

export const PARAM_NAMES = ['W_enc', 'b_enc', 'W_dec', 'b_dec', 'log_threshold'] as const;
export type ParamName = (typeof PARAM_NAMES)[number];

/** One Adam group, PyTorch semantics (bias correction on both moments, eps outside the sqrt). */
export interface AdamGroup {
  params: ParamName[];
  beta1: number;
  beta2: number;
  /** lr multiplier relative to the scheduled lr (threshold group: 2). */
  lrScale: number;
}

/** The seed's three groups: encoder, decoder (betas 0/0.999), threshold (2 x lr, 0.99/0.999). */
export const ADAM_GROUPS: AdamGroup[] = [
  { params: ['W_enc', 'b_enc'], beta1: 0.0, beta2: 0.999, lrScale: 1 },
  { params: ['W_dec', 'b_dec'], beta1: 0.0, beta2: 0.999, lrScale: 1 },
  { params: ['log_threshold'], beta1: 0.99, beta2: 0.999, lrScale: 2 },
];
export const ADAM_EPS = 1e-8;

/** Optimiser state as plain arrays: first and second moments per parameter, step count per group. */
export interface AdamState {
  m: Record<ParamName, Float32Array>;
  v: Record<ParamName, Float32Array>;
  steps: number[];
}

/** What one training step reports back (read from the device once per step). */
export interface StepStats {
  /** Reconstruction: squared error summed over d_in, averaged over the batch. */
  rec: number;
  /** Active features per row, averaged over the batch. */
  l0: number;
  /** Summed squared deviation of the batch from its mean: FVU = rec * B / totalVar. */
  totalVar: number;
}

export function paramShape(name: ParamName, s: SaeShape): number[] {
  switch (name) {
    case 'W_enc': return [s.dIn, s.dSae];
    case 'W_dec': return [s.dSae, s.dIn];
    case 'b_enc': case 'log_threshold': return [s.dSae];
    case 'b_dec': return [s.dIn];
  }
}

/**
 * Deterministic initial weights (the seed's recipe): decoder rows uniform in
 * [-1/sqrt(d_sae), 1/sqrt(d_sae)] (PyTorch's nn.Linear(d_sae, d_in) init) then scaled to unit
 * norm, W_enc = W_dec^T, biases zero, threshold = thresholdInit. `rng` returns uniforms in [0,1).
 */
export function initialWeights(shape: SaeShape, thresholdInit: number, rng: () => number): SaeWeights {
  const { dIn, dSae } = shape;
  const W_dec = new Float32Array(dSae * dIn);
  const bound = 1 / Math.sqrt(dSae);
  for (let i = 0; i < W_dec.length; i++) W_dec[i] = (2 * rng() - 1) * bound;
  for (let j = 0; j < dSae; j++) {
    const row = W_dec.subarray(j * dIn, (j + 1) * dIn);
    let n = 0;
    for (const v of row) n += v * v;
    n = Math.sqrt(n) || 1;
    for (let k = 0; k < dIn; k++) row[k] /= n;
  }
  return {
    W_enc: transpose(W_dec, dSae, dIn),
    b_enc: new Float32Array(dSae),
    W_dec,
    b_dec: new Float32Array(dIn),
    log_threshold: new Float32Array(dSae).fill(Math.log(thresholdInit)),
  };
}

/** Row-major [rows, cols] -> [cols, rows]. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c];
  return t;
}

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

  constructor(readonly tf: Tf, readonly cfg: SaeConfig, w: SaeWeights, adam?: AdamState, sinceFired?: Float32Array) {
    const make = (name: ParamName, data?: Float32Array) =>
      tf.variable(data ? tf.tensor(data, paramShape(name, cfg)) : tf.zeros(paramShape(name, cfg)), false);
    this.p = mapParams((n) => make(n, w[n]));
    this.m = mapParams((n) => make(n, adam?.m[n]));
    this.v = mapParams((n) => make(n, adam?.v[n]));
    this.adamSteps = adam ? [...adam.steps] : ADAM_GROUPS.map(() => 0);
    this.sinceFired = tf.variable(sinceFired ? tf.tensor1d(sinceFired) : tf.zeros([cfg.dSae]), false);
  }

  /**
   * One optimisation step on a batch x [B, d_in] (already normalised) with sparsity
   * coefficient `lambda` and scheduled learning rate `lr`. Returns the batch's statistics
   * before the update.
   */
  trainStep(x: Tensor, lambda: number, lr: number): StepStats {
    const tf = this.tf;
    const out = tf.tidy(() => {
      const { grads, rec, l0, fired } = this.gradients(x, lambda);
      this.adamUpdate(grads, lr);
      this.renormaliseDecoder();
      const B = x.shape[0];
      this.sinceFired.assign(tf.where(fired.greater(0), tf.zerosLike(fired), this.sinceFired.add(B)));
      const centred = x.sub(x.mean(0));
      return tf.stack([rec, l0, centred.square().sum()]);
    });
    const [rec, l0, totalVar] = out.dataSync();
    out.dispose();
    return { rec, l0, totalVar };
  }

  /**
   * Loss and closed-form gradients (call inside tf.tidy). Decoder gradient already has its
   * component parallel to each (unit-norm) decoder row removed, as the seed's hook does.
   */
  gradients(x: Tensor, lambda: number) {
    const tf = this.tf;
    const { W_enc, b_enc, W_dec, b_dec, log_threshold } = this.p;
    const B = x.shape[0];
    const bw = this.cfg.bandwidth;
    // Forward.
    const xc = this.cfg.applyBDecToInput ? x.sub(b_dec) : x;
    const z = tf.matMul(xc, W_enc).add(b_enc);
    const thr = log_threshold.exp();
    const s = z.greater(thr).cast('float32');
    const f = z.mul(s);
    const err = tf.matMul(f, W_dec).add(b_dec).sub(x);
    const rec = err.square().sum().div(B);
    // Column sums over the batch as [1, B] x [B, n] matMuls: tfjs reduces axis 0 by
    // transposing first, which on wasm costs more than the product.
    const ones = tf.ones([1, B]);
    const colSum = (m: Tensor) => tf.matMul(ones, m).reshape([-1]);
    const fired = colSum(s);
    const l0 = fired.sum().div(B);
    // Backward. g = d rec / d x_hat.
    const g = err.mul(2 / B);
    const dW_decRaw = tf.matMul(tf.transpose(f), g);
    const W_dec_grad = projectDecoderGrad(W_dec, dW_decRaw);
    const df = tf.matMul(g, tf.transpose(W_dec));
    const dz = df.mul(s); // the gate passes no gradient to z (straight-through: zero)
    const W_enc_grad = tf.matMul(tf.transpose(xc), dz);
    const b_enc_grad = colSum(dz);
    // b_dec: the output bias, and (when subtracted from the input) the encoder path:
    // sum_b (dz W_enc^T) = W_enc (sum_b dz), a matrix-vector product instead of a matMul.
    let b_dec_grad = g.sum(0);
    if (this.cfg.applyBDecToInput) {
      b_dec_grad = b_dec_grad.sub(tf.matMul(W_enc, b_enc_grad.reshape([-1, 1])).reshape([-1]));
    }
    const log_threshold_grad = logThresholdGrad(tf, z, thr, df, lambda, bw, colSum);
    const grads: Record<ParamName, Tensor> = {
      W_enc: W_enc_grad, b_enc: b_enc_grad, W_dec: W_dec_grad, b_dec: b_dec_grad, log_threshold: log_threshold_grad,
    };
    return { grads, rec, l0, fired };
  }

  /** Adam, three groups, PyTorch's update rule (call inside tf.tidy). */
  adamUpdate(grads: Record<ParamName, Tensor>, lr: number): void {
    ADAM_GROUPS.forEach((group, gi) => {
      const t = ++this.adamSteps[gi];
      for (const name of group.params) adamStep(this.p[name], this.m[name], this.v[name], grads[name], group, t, lr);
    });
  }

  /** Each feature's decoder row back to unit norm (call inside tf.tidy). */
  renormaliseDecoder(): void {
    renormaliseRows(this.p.W_dec);
  }

  /** Forward only, for evaluation: summed squared error, active count, firings per feature (the variance is the accumulator's). */
  evaluate(x: Tensor): { sqErr: number; active: number; fired: Float32Array } {
    const tf = this.tf;
    const [stats, firedT] = tf.tidy(() => {
      const { W_enc, b_enc, W_dec, b_dec, log_threshold } = this.p;
      const xc = this.cfg.applyBDecToInput ? x.sub(b_dec) : x;
      const z = tf.matMul(xc, W_enc).add(b_enc);
      const s = z.greater(log_threshold.exp()).cast('float32');
      const err = tf.matMul(z.mul(s), W_dec).add(b_dec).sub(x);
      const fired = s.sum(0);
      return [tf.stack([err.square().sum(), fired.sum()]), fired];
    });
    const [sqErr, active] = stats.dataSync();
    const fired = firedT.dataSync() as Float32Array;
    stats.dispose();
    firedT.dispose();
    return { sqErr, active, fired: new Float32Array(fired) };
  }

  /** Reconstruction x_hat of a batch (for tests and export checks). */
  reconstruct(x: Tensor): Tensor {
    const tf = this.tf;
    return tf.tidy(() => {
      const { W_enc, b_enc, W_dec, b_dec, log_threshold } = this.p;
      const xc = this.cfg.applyBDecToInput ? x.sub(b_dec) : x;
      const z = tf.matMul(xc, W_enc).add(b_enc);
      const f = z.mul(z.greater(log_threshold.exp()).cast('float32'));
      return tf.matMul(f, W_dec).add(b_dec);
    });
  }

  /** Fraction of features that have not fired in the last `window` samples. */
  deadFraction(window: number): number {
    const t = this.tf.tidy(() => this.sinceFired.greaterEqual(window).cast('float32').mean());
    const v = t.dataSync()[0];
    t.dispose();
    return v;
  }

  weights(): SaeWeights {
    return mapParams((n) => this.p[n].dataSync() as Float32Array) as SaeWeights;
  }

  adamState(): AdamState {
    return {
      m: mapParams((n) => this.m[n].dataSync() as Float32Array),
      v: mapParams((n) => this.v[n].dataSync() as Float32Array),
      steps: [...this.adamSteps],
    };
  }

  sinceFiredArray(): Float32Array {
    return this.sinceFired.dataSync() as Float32Array;
  }

  dispose(): void {
    for (const n of PARAM_NAMES) {
      this.p[n].dispose();
      this.m[n].dispose();
      this.v[n].dispose();
    }
    this.sinceFired.dispose();
  }
}

/**
 * The pieces of a step that both the in-process model and a feature shard (shard.ts) run.
 * Call inside tf.tidy.
 */

/**
 * d loss / d log_threshold. s enters the loss through f = z * s (incoming grad df * z) and
 * through L0 (incoming grad lambda / B); the seed's rectangle kernel: d s / d thr = -1/bw where
 * |relu(z) - thr| < bw/2, else 0. So d thr = -1/bw [sum_b w df z + lambda/B sum_b w] (w the
 * window indicator), and d log_thr = d thr * thr.
 */
export function logThresholdGrad(tf: Tf, z: Tensor, thr: Tensor, df: Tensor, lambda: number, bw: number, colSum: (m: Tensor) => Tensor): Tensor {
  const B = z.shape[0];
  const inWindow = z.relu().sub(thr).abs().less(bw / 2).cast('float32');
  return colSum(inWindow.mul(df).mul(z)).add(colSum(inWindow).mul(lambda / B)).mul(-1 / bw).mul(thr);
}

/** The decoder gradient without its component parallel to each (unit-norm) decoder row. */
export function projectDecoderGrad(W_dec: Tensor, dW_dec: Tensor): Tensor {
  return dW_dec.sub(W_dec.mul(dW_dec).sum(1, true).mul(W_dec));
}

/** One Adam update of one parameter, PyTorch's rule (bias correction on both moments, eps outside the sqrt). */
export function adamStep(p: Variable, m: Variable, v: Variable, grad: Tensor, group: AdamGroup, t: number, lr: number): void {
  const { beta1, beta2 } = group;
  const stepSize = (lr * group.lrScale) / (1 - Math.pow(beta1, t));
  const sqrtBc2 = Math.sqrt(1 - Math.pow(beta2, t));
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

export function mapParams<T>(fn: (name: ParamName) => T): Record<ParamName, T> {
  return Object.fromEntries(PARAM_NAMES.map((n) => [n, fn(n)])) as Record<ParamName, T>;
}

/** Bytes one training step needs, roughly: parameters + 2 Adam moments + step temporaries. */
export function estimateTrainingBytes(dIn: number, dSae: number, batch: number): number {
  const params = 2 * dIn * dSae + 3 * dSae + dIn;
  // Live [B, d_sae] temporaries in a step: z, s, f, f^T, df, dz, window, ds, where (~10);
  // [d_in, d_sae]-sized: 4 gradients/transposes + new Adam moments (~6).
  const temporaries = 10 * batch * dSae + 6 * dIn * dSae + 6 * batch * dIn;
  return 4 * (3 * params + temporaries);
}
