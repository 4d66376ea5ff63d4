/**
 * Model parallelism over CPU cores for the single-threaded tfjs backends (wasm, cpu): the
 * SAE's features split across n worker threads, each with its own tfjs backend. The SAE is
 * separable by feature except for the reconstruction sum: shard k owns W_enc[:, k], b_enc[k],
 * W_dec[k, :], log_threshold[k] and their Adam moments; the coordinator owns b_dec, adds the
 * shards' partial decodes x_hat = sum_k f_k W_dec_k + b_dec, computes g = 2 (x_hat - x) / B
 * and sends g back. Two exchanges per step; the same step functions as JumpReluSae (tfjs.ts),
 * so the result equals the in-process engine up to float summation order.
 */
import { Worker } from 'node:worker_threads';
import type * as tfTypes from '@tensorflow/tfjs';
import {
  initialState,
  type EngineInfo,
  type EngineOptions,
  type EngineState,
  type EvalStats,
  type SaeEngine,
} from '../engine.js';
import { paramShape, type SaeConfig, type StepStats } from '../jumprelu.js';
import {
  FEATURE_PARAMS,
  adamUpdate,
  encode,
  featureGradients,
  loadTf,
  renormaliseRows,
  updateSinceFired,
  type AdamVars,
  type FeatureParam,
  type Tf,
  type TfjsBackend,
} from './tfjs.js';

type Variable = tfTypes.Variable;

type ShardArrays = Record<FeatureParam, Float32Array>;
/** One shard's slice of EngineState (b_dec and the Adam step counts stay with the coordinator). */
interface ShardState {
  weights: ShardArrays;
  m: ShardArrays;
  v: ShardArrays;
  sinceFired: Float32Array;
}

// ---------------------------------------------------------------------------------------
// The shard (runs in a worker: tfjs-worker.ts)
// ---------------------------------------------------------------------------------------

export class SaeShard {
  p!: Record<FeatureParam, Variable>;
  m!: Record<FeatureParam, Variable>;
  v!: Record<FeatureParam, Variable>;
  sinceFired!: Variable;
  private kept: ReturnType<typeof encode> | null = null;

  /** cfg.dSae is this shard's feature count. */
  constructor(
    readonly tf: Tf,
    readonly cfg: SaeConfig,
    s: ShardState,
  ) {
    const make = (n: FeatureParam, a: Float32Array) => tf.variable(tf.tensor(a, paramShape(n, cfg)), false);
    const vars = (arrays: ShardArrays) =>
      Object.fromEntries(FEATURE_PARAMS.map((n) => [n, make(n, arrays[n])])) as Record<FeatureParam, Variable>;
    this.p = vars(s.weights);
    this.m = vars(s.m);
    this.v = vars(s.v);
    this.sinceFired = tf.variable(tf.tensor1d(s.sinceFired), false);
  }

  /** Phase 1: encode and partial decode f_k W_dec_k [B*d_in], firings per feature; keeps the forward pass for phase 2 if asked. */
  forward(
    x: Float32Array,
    B: number,
    bDec: Float32Array,
    keep: boolean,
  ): { partial: Float32Array; fired: Float32Array } {
    const tf = this.tf;
    this.release();
    const out = tf.tidy(() => {
      const enc = encode(
        tf,
        this.p,
        tf.tensor2d(x, [B, this.cfg.dIn]),
        this.cfg.applyBDecToInput ? tf.tensor1d(bDec) : null,
      );
      if (keep)
        this.kept = Object.fromEntries(Object.entries(enc).map(([k, t]) => [k, tf.keep(t)])) as ReturnType<
          typeof encode
        >;
      return [tf.matMul(enc.f, this.p.W_dec), tf.matMul(tf.ones([1, B]), enc.s)];
    });
    const [partial, fired] = out.map((t) => t.dataSync() as Float32Array);
    out.forEach((t) => t.dispose());
    return { partial, fired };
  }

  /**
   * Phase 2, given g = d rec / d x_hat [B, d_in]: gradients, Adam (`steps`: the groups' new
   * step counts), decoder renormalisation, dead counters. Returns this shard's share of the
   * encoder path of b_dec's gradient, W_enc (sum_b dz) [d_in].
   */
  backward(g: Float32Array, B: number, lambda: number, lr: number, steps: number[]): Float32Array {
    const tf = this.tf;
    const enc = this.kept;
    if (!enc) throw new Error('shard: backward() without forward(keep=true)');
    const out = tf.tidy(() => {
      const r = featureGradients(tf, this.p, enc, tf.tensor2d(g, [B, this.cfg.dIn]), lambda, this.cfg.bandwidth);
      adamUpdate(this, r.grads, steps, lr);
      renormaliseRows(this.p.W_dec);
      updateSinceFired(tf, this.sinceFired, r.fired, B);
      return r.encoderPathOfBDec;
    });
    this.release();
    const result = out.dataSync() as Float32Array;
    out.dispose();
    return result;
  }

  deadCount(window: number): number {
    const t = this.tf.tidy(() => this.sinceFired.greaterEqual(window).cast('float32').sum());
    const n = t.dataSync()[0];
    t.dispose();
    return n;
  }

  state(): ShardState {
    const read = (r: Record<FeatureParam, Variable>) =>
      Object.fromEntries(FEATURE_PARAMS.map((n) => [n, r[n].dataSync() as Float32Array])) as ShardArrays;
    return {
      weights: read(this.p),
      m: read(this.m),
      v: read(this.v),
      sinceFired: this.sinceFired.dataSync() as Float32Array,
    };
  }

  setState(s: ShardState): void {
    for (const n of FEATURE_PARAMS) {
      this.p[n].assign(this.tf.tensor(s.weights[n], paramShape(n, this.cfg)));
      this.m[n].assign(this.tf.tensor(s.m[n], paramShape(n, this.cfg)));
      this.v[n].assign(this.tf.tensor(s.v[n], paramShape(n, this.cfg)));
    }
    this.sinceFired.assign(this.tf.tensor1d(s.sinceFired));
  }

  private release(): void {
    if (!this.kept) return;
    for (const t of Object.values(this.kept)) t.dispose();
    this.kept = null;
  }

  dispose(): void {
    this.release();
    for (const n of FEATURE_PARAMS) [this.p[n], this.m[n], this.v[n]].forEach((t) => t.dispose());
    this.sinceFired.dispose();
  }
}

/** The worker side of the protocol: requests {id, op, ...} -> replies {id, result} or {id, error}. */
export function shardWorkerHandler(): (msg: any) => Promise<unknown> {
  let shard: SaeShard | null = null;
  return async (msg) => {
    switch (msg.op) {
      case 'init': {
        const { tf } = await loadTf(msg.cfg.backend);
        shard = new SaeShard(tf, msg.cfg, msg.state);
        return null;
      }
      case 'forward':
        return shard!.forward(msg.x, msg.B, msg.bDec, msg.keep);
      case 'backward':
        return shard!.backward(msg.g, msg.B, msg.lambda, msg.lr, msg.steps);
      case 'dead':
        return shard!.deadCount(msg.window);
      case 'state':
        return shard!.state();
      case 'restore':
        return shard!.setState(msg.state);
      case 'close':
        shard?.dispose();
        shard = null;
        return null;
      default:
        throw new Error(`shard worker: unknown op ${msg.op}`);
    }
  };
}

class ShardWorker {
  private readonly worker = new Worker(new URL('./tfjs-worker.js', import.meta.url));
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  constructor() {
    this.worker.on('message', (m: any) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error));
      else p?.resolve(m.result);
    });
    this.worker.on('error', (e) => {
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    });
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, op, ...args });
    });
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

// ---------------------------------------------------------------------------------------
// The coordinator
// ---------------------------------------------------------------------------------------

/** Feature range [start, end) of shard k of n. */
function range(k: number, n: number, dSae: number): [number, number] {
  return [Math.floor((k * dSae) / n), Math.floor(((k + 1) * dSae) / n)];
}

/** Shard k's slice of the whole state. */
function sliceState(s: EngineState, cfg: SaeConfig, a: number, b: number): ShardState {
  const { dIn, dSae } = cfg;
  const slice = (w: Record<FeatureParam, Float32Array>): ShardArrays => {
    const W_enc = new Float32Array(dIn * (b - a));
    for (let r = 0; r < dIn; r++) W_enc.set(w.W_enc.subarray(r * dSae + a, r * dSae + b), r * (b - a));
    return {
      W_enc,
      b_enc: w.b_enc.slice(a, b),
      W_dec: w.W_dec.slice(a * dIn, b * dIn),
      log_threshold: w.log_threshold.slice(a, b),
    };
  };
  return { weights: slice(s.weights), m: slice(s.adam.m), v: slice(s.adam.v), sinceFired: s.sinceFired.slice(a, b) };
}

/** The shards' slices joined back: feature vectors and W_dec rows concatenate, W_enc columns interleave. */
function joinShards(parts: ShardArrays[], cfg: SaeConfig): ShardArrays {
  const { dIn, dSae } = cfg;
  const W_enc = new Float32Array(dIn * dSae);
  parts.forEach((part, k) => {
    const [a, b] = range(k, parts.length, dSae);
    for (let r = 0; r < dIn; r++) W_enc.set(part.W_enc.subarray(r * (b - a), (r + 1) * (b - a)), r * dSae + a);
  });
  return {
    W_enc,
    b_enc: concat(parts.map((p) => p.b_enc)),
    W_dec: concat(parts.map((p) => p.W_dec)),
    log_threshold: concat(parts.map((p) => p.log_threshold)),
  };
}

export class ParallelTfjsEngine implements SaeEngine {
  private adamSteps: number[];
  /** b_dec and its Adam moments, on this thread's tfjs backend. */
  private readonly bDec: AdamVars<'b_dec'>;
  /** b_dec as an array for the shards' forward pass (refreshed after each update). */
  private bDecArray: Float32Array;

  private constructor(
    private readonly tf: Tf,
    readonly cfg: SaeConfig,
    private readonly shards: ShardWorker[],
    s: EngineState,
    readonly info: EngineInfo,
  ) {
    const make = (a: Float32Array) => tf.variable(tf.tensor1d(a), false);
    this.bDec = {
      p: { b_dec: make(s.weights.b_dec) },
      m: { b_dec: make(s.adam.m.b_dec) },
      v: { b_dec: make(s.adam.v.b_dec) },
    };
    this.bDecArray = new Float32Array(s.weights.b_dec);
    this.adamSteps = [...s.adam.steps];
  }

  static async create(tf: Tf, backend: TfjsBackend, o: EngineOptions, info: EngineInfo): Promise<ParallelTfjsEngine> {
    const state = initialState(o);
    const shards = Array.from({ length: o.threads }, () => new ShardWorker());
    try {
      await Promise.all(
        shards.map((s, k) => {
          const [a, b] = range(k, o.threads, o.cfg.dSae);
          return s.call('init', { cfg: { ...o.cfg, dSae: b - a, backend }, state: sliceState(state, o.cfg, a, b) });
        }),
      );
    } catch (e) {
      await Promise.all(shards.map((s) => s.terminate()));
      throw e;
    }
    return new ParallelTfjsEngine(tf, o.cfg, shards, state, info);
  }

  async trainStep(x: Float32Array, B: number, lambda: number, lr: number): Promise<StepStats> {
    const { dIn } = this.cfg;
    const steps = this.adamSteps.map((s) => s + 1);
    const parts = await this.forward(x, B, true);
    const g = new Float32Array(B * dIn);
    let rec = 0,
      active = 0;
    for (let i = 0; i < g.length; i++) {
      const e = this.reconstruction(parts, i) - x[i];
      rec += e * e;
      g[i] = (2 * e) / B;
    }
    for (const p of parts) for (const c of p.fired) active += c;
    const encoderPaths = await Promise.all(
      this.shards.map((s) => s.call<Float32Array>('backward', { g, B, lambda, lr, steps })),
    );
    // b_dec's gradient: the output bias sum_b g, minus the encoder path when b_dec is subtracted from the input.
    const grad = new Float64Array(dIn);
    for (let i = 0; i < g.length; i++) grad[i % dIn] += g[i];
    if (this.cfg.applyBDecToInput) for (const part of encoderPaths) for (let k = 0; k < dIn; k++) grad[k] -= part[k];
    this.tf.tidy(() => adamUpdate(this.bDec, { b_dec: this.tf.tensor1d(Float32Array.from(grad)) }, steps, lr));
    this.bDecArray = this.bDec.p.b_dec.dataSync() as Float32Array;
    this.adamSteps = steps;
    return { rec: rec / B, l0: active / B, totalVar: centredSumSq(x, B, dIn) };
  }

  async evaluate(x: Float32Array, rows: number): Promise<EvalStats> {
    const parts = await this.forward(x, rows, false);
    let sqErr = 0;
    for (let i = 0; i < rows * this.cfg.dIn; i++) sqErr += (this.reconstruction(parts, i) - x[i]) ** 2;
    const fired = concat(parts.map((p) => p.fired));
    return { sqErr, active: fired.reduce((a, b) => a + b, 0), fired };
  }

  private forward(x: Float32Array, rows: number, keep: boolean) {
    const args = { x: x.subarray(0, rows * this.cfg.dIn), B: rows, bDec: this.bDecArray, keep };
    return Promise.all(this.shards.map((s) => s.call<{ partial: Float32Array; fired: Float32Array }>('forward', args)));
  }

  /** x_hat at flat index i: b_dec plus the shards' partial decodes. */
  private reconstruction(parts: { partial: Float32Array }[], i: number): number {
    let xh = this.bDecArray[i % this.cfg.dIn];
    for (const p of parts) xh += p.partial[i];
    return xh;
  }

  async deadFraction(window: number): Promise<number> {
    const counts = await Promise.all(this.shards.map((s) => s.call<number>('dead', { window })));
    return counts.reduce((a, b) => a + b, 0) / this.cfg.dSae;
  }

  async snapshot(): Promise<EngineState> {
    const states = await Promise.all(this.shards.map((s) => s.call<ShardState>('state')));
    const read = (v: Variable) => new Float32Array(v.dataSync() as Float32Array);
    const whole = (pick: (s: ShardState) => ShardArrays, bDec: Variable) => ({
      ...joinShards(states.map(pick), this.cfg),
      b_dec: read(bDec),
    });
    return {
      weights: whole((s) => s.weights, this.bDec.p.b_dec),
      adam: {
        m: whole((s) => s.m, this.bDec.m.b_dec),
        v: whole((s) => s.v, this.bDec.v.b_dec),
        steps: [...this.adamSteps],
      },
      sinceFired: concat(states.map((s) => s.sinceFired)),
    };
  }

  async restore(s: EngineState): Promise<void> {
    await Promise.all(
      this.shards.map((w, k) => {
        const [a, b] = range(k, this.shards.length, this.cfg.dSae);
        return w.call('restore', { state: sliceState(s, this.cfg, a, b) });
      }),
    );
    this.bDec.p.b_dec.assign(this.tf.tensor1d(s.weights.b_dec));
    this.bDec.m.b_dec.assign(this.tf.tensor1d(s.adam.m.b_dec));
    this.bDec.v.b_dec.assign(this.tf.tensor1d(s.adam.v.b_dec));
    this.bDecArray = new Float32Array(s.weights.b_dec);
    this.adamSteps = [...s.adam.steps];
  }

  async dispose(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.call('close').catch(() => null)));
    await Promise.all(this.shards.map((s) => s.terminate()));
    for (const vars of [this.bDec.p, this.bDec.m, this.bDec.v]) vars.b_dec.dispose();
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Sum of squared deviations of a [B, d] batch from its mean. */
function centredSumSq(x: Float32Array, B: number, d: number): number {
  const mean = new Float64Array(d);
  for (let i = 0; i < B * d; i++) mean[i % d] += x[i];
  for (let k = 0; k < d; k++) mean[k] /= B;
  let s = 0;
  for (let i = 0; i < B * d; i++) s += (x[i] - mean[i % d]) ** 2;
  return s;
}
