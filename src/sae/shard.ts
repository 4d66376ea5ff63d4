/**
 * One feature shard of a JumpReLU SAE, for model parallelism over CPU cores (the wasm backend
 * is single-threaded in Node). The SAE is separable by feature except for the reconstruction
 * sum: shard k owns W_enc[:, k], b_enc[k], W_dec[k, :], log_threshold[k] and their Adam
 * moments; the coordinator (parallel.ts) owns b_dec, adds the shards' partial decodes
 * x_hat = sum_k f_k W_dec_k + b_dec, computes g = 2 (x_hat - x) / B, and sends g back.
 * Same math as jumprelu.ts, split in two phases around that exchange.
 */
import type * as tfTypes from '@tensorflow/tfjs';
import type { Tf } from './backend.js';
import { ADAM_GROUPS, adamStep, logThresholdGrad, projectDecoderGrad, renormaliseRows } from './jumprelu.js';

type Tensor = tfTypes.Tensor;
type Variable = tfTypes.Variable;

export const SHARD_PARAMS = ['W_enc', 'b_enc', 'W_dec', 'log_threshold'] as const;
export type ShardParam = (typeof SHARD_PARAMS)[number];
export type ShardArrays = Record<ShardParam, Float32Array>;

export interface ShardInit {
  dIn: number;
  /** Features in this shard. */
  dSae: number;
  applyBDecToInput: boolean;
  bandwidth: number;
  weights: ShardArrays;
  m: ShardArrays;
  v: ShardArrays;
  sinceFired: Float32Array;
}

function shape(name: ShardParam, dIn: number, dSae: number): number[] {
  return name === 'W_enc' ? [dIn, dSae] : name === 'W_dec' ? [dSae, dIn] : [dSae];
}

export class SaeShard {
  readonly p: Record<ShardParam, Variable>;
  readonly m: Record<ShardParam, Variable>;
  readonly v: Record<ShardParam, Variable>;
  readonly sinceFired: Variable;
  private kept: { xc: Tensor; z: Tensor; s: Tensor; f: Tensor } | null = null;

  constructor(readonly tf: Tf, readonly c: Omit<ShardInit, 'weights' | 'm' | 'v' | 'sinceFired'>, init: ShardInit) {
    const make = (n: ShardParam, a: Float32Array) => tf.variable(tf.tensor(a, shape(n, c.dIn, c.dSae)), false);
    this.p = Object.fromEntries(SHARD_PARAMS.map((n) => [n, make(n, init.weights[n])])) as Record<ShardParam, Variable>;
    this.m = Object.fromEntries(SHARD_PARAMS.map((n) => [n, make(n, init.m[n])])) as Record<ShardParam, Variable>;
    this.v = Object.fromEntries(SHARD_PARAMS.map((n) => [n, make(n, init.v[n])])) as Record<ShardParam, Variable>;
    this.sinceFired = tf.variable(tf.tensor1d(init.sinceFired), false);
  }

  /** Phase 1: encode, gate, partial decode. Keeps what phase 2 needs. Returns [B*d_in] and fired counts. */
  forward(x: Float32Array, B: number, bDec: Float32Array, keep: boolean): { partial: Float32Array; fired: Float32Array } {
    const tf = this.tf;
    this.release();
    const out = tf.tidy(() => {
      const xt = tf.tensor2d(x, [B, this.c.dIn]);
      const xc = this.c.applyBDecToInput ? xt.sub(tf.tensor1d(bDec)) : xt;
      const z = tf.matMul(xc, this.p.W_enc).add(this.p.b_enc);
      const s = z.greater(this.p.log_threshold.exp()).cast('float32');
      const f = z.mul(s);
      if (keep) this.kept = { xc: tf.keep(xc), z: tf.keep(z), s: tf.keep(s), f: tf.keep(f) };
      return [tf.matMul(f, this.p.W_dec), tf.matMul(tf.ones([1, B]), s)];
    });
    const partial = out[0].dataSync() as Float32Array;
    const fired = out[1].dataSync() as Float32Array;
    out.forEach((t) => t.dispose());
    return { partial, fired };
  }

  /**
   * Phase 2, given g = d rec / d x_hat [B, d_in]: gradients, Adam (steps = the groups' new
   * step counts), decoder renormalisation. Returns this shard's share of the pre-encoder path
   * of b_dec's gradient, W_enc (sum_b dz) [d_in] (the coordinator subtracts it).
   */
  backward(g: Float32Array, B: number, lambda: number, lr: number, steps: number[]): Float32Array {
    const tf = this.tf;
    const k = this.kept;
    if (!k) throw new Error('shard: backward() without forward(keep=true)');
    const out = tf.tidy(() => {
      const { W_enc, W_dec, log_threshold } = this.p;
      const gt = tf.tensor2d(g, [B, this.c.dIn]);
      const ones = tf.ones([1, B]);
      const colSum = (m: Tensor) => tf.matMul(ones, m).reshape([-1]);
      const thr = log_threshold.exp();
      const df = tf.matMul(gt, tf.transpose(W_dec));
      const dz = df.mul(k.s);
      const b_enc_grad = colSum(dz);
      const grads: Record<ShardParam, Tensor> = {
        W_enc: tf.matMul(tf.transpose(k.xc), dz),
        b_enc: b_enc_grad,
        W_dec: projectDecoderGrad(W_dec, tf.matMul(tf.transpose(k.f), gt)),
        log_threshold: logThresholdGrad(tf, k.z, thr, df, lambda, this.c.bandwidth, colSum),
      };
      const bDecPart = tf.matMul(W_enc, b_enc_grad.reshape([-1, 1])).reshape([-1]);
      ADAM_GROUPS.forEach((group, gi) => {
        for (const name of group.params) {
          if (name === 'b_dec') continue; // the coordinator's
          adamStep(this.p[name], this.m[name], this.v[name], grads[name], group, steps[gi], lr);
        }
      });
      renormaliseRows(this.p.W_dec);
      const fired = colSum(k.s);
      this.sinceFired.assign(tf.where(fired.greater(0), tf.zerosLike(fired), this.sinceFired.add(B)));
      return bDecPart;
    });
    this.release();
    const r = out.dataSync() as Float32Array;
    out.dispose();
    return r;
  }

  deadCount(window: number): number {
    const t = this.tf.tidy(() => this.sinceFired.greaterEqual(window).cast('float32').sum());
    const n = t.dataSync()[0];
    t.dispose();
    return n;
  }

  state(): { weights: ShardArrays; m: ShardArrays; v: ShardArrays; sinceFired: Float32Array } {
    const read = (r: Record<ShardParam, Variable>) =>
      Object.fromEntries(SHARD_PARAMS.map((n) => [n, r[n].dataSync() as Float32Array])) as ShardArrays;
    return { weights: read(this.p), m: read(this.m), v: read(this.v), sinceFired: this.sinceFired.dataSync() as Float32Array };
  }

  private release(): void {
    if (!this.kept) return;
    for (const t of Object.values(this.kept)) t.dispose();
    this.kept = null;
  }

  dispose(): void {
    this.release();
    for (const n of SHARD_PARAMS) [this.p[n], this.m[n], this.v[n]].forEach((t) => t.dispose());
    this.sinceFired.dispose();
  }
}
