/**
 * Model parallelism over CPU cores: the SAE's features split across `n` worker threads, each
 * with its own tfjs backend (shard.ts). Per step, two exchanges: the shards' partial decodes
 * [B, d_in] in, g = 2 (x_hat - x) / B out. b_dec and its Adam moments live here (d_in values).
 * Same update as JumpReluSae up to float summation order.
 */
import { Worker } from 'node:worker_threads';
import type { BackendName } from './backend.js';
import { ADAM_EPS, ADAM_GROUPS, type AdamState, type SaeConfig, type SaeWeights, type StepStats } from './jumprelu.js';
import { SHARD_PARAMS, type ShardArrays, type ShardInit } from './shard.js';

class ShardWorker {
  private readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();

  constructor() {
    this.worker = new Worker(new URL('./shard-worker.js', import.meta.url));
    this.worker.on('message', (m: any) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error));
      else p?.resolve(m.result);
    });
    this.worker.on('error', (e) => { for (const p of this.pending.values()) p.reject(e); this.pending.clear(); });
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

/** Feature range [start, end) of shard k of n. */
function range(k: number, n: number, dSae: number): [number, number] {
  return [Math.floor((k * dSae) / n), Math.floor(((k + 1) * dSae) / n)];
}

/** Columns [a, b) of a row-major [rows, cols] matrix, or rows [a, b) of a [rows, cols] one. */
function cols(m: Float32Array, rows: number, ncols: number, a: number, b: number): Float32Array {
  const out = new Float32Array(rows * (b - a));
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * ncols + a, r * ncols + b), r * (b - a));
  return out;
}

function slice(w: Record<string, Float32Array>, dIn: number, dSae: number, a: number, b: number): ShardArrays {
  return {
    W_enc: cols(w.W_enc, dIn, dSae, a, b),
    b_enc: w.b_enc.slice(a, b),
    W_dec: w.W_dec.slice(a * dIn, b * dIn),
    log_threshold: w.log_threshold.slice(a, b),
  };
}

export class ParallelSae {
  adamSteps: number[];
  private bDec: Float32Array;
  private bDecM: Float32Array;
  private bDecV: Float32Array;

  private constructor(readonly cfg: SaeConfig, private readonly shards: ShardWorker[], w: SaeWeights, adam?: AdamState) {
    this.bDec = new Float32Array(w.b_dec);
    this.bDecM = adam ? new Float32Array(adam.m.b_dec) : new Float32Array(cfg.dIn);
    this.bDecV = adam ? new Float32Array(adam.v.b_dec) : new Float32Array(cfg.dIn);
    this.adamSteps = adam ? [...adam.steps] : ADAM_GROUPS.map(() => 0);
  }

  static async create(n: number, backend: BackendName, cfg: SaeConfig, w: SaeWeights, adam?: AdamState, sinceFired?: Float32Array) {
    const { dIn, dSae } = cfg;
    const zeros = { W_enc: new Float32Array(dIn * dSae), b_enc: new Float32Array(dSae), W_dec: new Float32Array(dSae * dIn), log_threshold: new Float32Array(dSae) };
    const shards = Array.from({ length: n }, () => new ShardWorker());
    try {
      await Promise.all(shards.map((s, k) => {
        const [a, b] = range(k, n, dSae);
        const init: ShardInit = {
          dIn, dSae: b - a, applyBDecToInput: cfg.applyBDecToInput, bandwidth: cfg.bandwidth,
          weights: slice(w as unknown as Record<string, Float32Array>, dIn, dSae, a, b), m: slice((adam?.m ?? zeros) as Record<string, Float32Array>, dIn, dSae, a, b), v: slice((adam?.v ?? zeros) as Record<string, Float32Array>, dIn, dSae, a, b),
          sinceFired: sinceFired ? sinceFired.slice(a, b) : new Float32Array(b - a),
        };
        return s.call('init', { backend, init });
      }));
    } catch (e) {
      await Promise.all(shards.map((s) => s.terminate()));
      throw e;
    }
    return new ParallelSae(cfg, shards, w, adam);
  }

  async trainStep(x: Float32Array, B: number, lambda: number, lr: number): Promise<StepStats> {
    const { dIn } = this.cfg;
    const steps = this.adamSteps.map((s) => s + 1);
    const parts = await Promise.all(this.shards.map((s) => s.call<{ partial: Float32Array; fired: Float32Array }>('forward', { x, B, bDec: this.bDec, keep: true })));
    const g = new Float32Array(B * dIn);
    let rec = 0, active = 0;
    for (let i = 0; i < g.length; i++) {
      let xh = this.bDec[i % dIn];
      for (const p of parts) xh += p.partial[i];
      const e = xh - x[i];
      rec += e * e;
      g[i] = (2 * e) / B;
    }
    for (const p of parts) for (const c of p.fired) active += c;
    const bParts = await Promise.all(this.shards.map((s) => s.call<Float32Array>('backward', { g, B, lambda, lr, steps })));
    // b_dec: decoder group (Adam, betas 0/0.999).
    const grad = new Float64Array(dIn);
    for (let i = 0; i < g.length; i++) grad[i % dIn] += g[i];
    if (this.cfg.applyBDecToInput) for (const bp of bParts) for (let k = 0; k < dIn; k++) grad[k] -= bp[k];
    const group = ADAM_GROUPS[1];
    const t = steps[1];
    const stepSize = (lr * group.lrScale) / (1 - Math.pow(group.beta1, t));
    const sqrtBc2 = Math.sqrt(1 - Math.pow(group.beta2, t));
    for (let k = 0; k < dIn; k++) {
      const m = group.beta1 === 0 ? grad[k] : group.beta1 * this.bDecM[k] + (1 - group.beta1) * grad[k];
      const v = group.beta2 * this.bDecV[k] + (1 - group.beta2) * grad[k] * grad[k];
      this.bDecM[k] = m;
      this.bDecV[k] = v;
      this.bDec[k] -= (stepSize * m) / (Math.sqrt(v) / sqrtBc2 + ADAM_EPS);
    }
    this.adamSteps = steps;
    return { rec: rec / B, l0: active / B, totalVar: centredSumSq(x, B, dIn) };
  }

  async evaluate(x: Float32Array, rows: number): Promise<{ sqErr: number; active: number; fired: Float32Array }> {
    const { dIn } = this.cfg;
    const parts = await Promise.all(this.shards.map((s) => s.call<{ partial: Float32Array; fired: Float32Array }>('forward', { x: x.subarray(0, rows * dIn), B: rows, bDec: this.bDec, keep: false })));
    let sqErr = 0;
    for (let i = 0; i < rows * dIn; i++) {
      let xh = this.bDec[i % dIn];
      for (const p of parts) xh += p.partial[i];
      sqErr += (xh - x[i]) ** 2;
    }
    const fired = concat(parts.map((p) => p.fired));
    return { sqErr, active: fired.reduce((a, b) => a + b, 0), fired };
  }

  async deadFraction(window: number): Promise<number> {
    const counts = await Promise.all(this.shards.map((s) => s.call<number>('dead', { window })));
    return counts.reduce((a, b) => a + b, 0) / this.cfg.dSae;
  }

  async snapshot(): Promise<{ weights: SaeWeights; adam: AdamState; sinceFired: Float32Array }> {
    const { dIn, dSae } = this.cfg;
    const states = await Promise.all(this.shards.map((s) => s.call<{ weights: ShardArrays; m: ShardArrays; v: ShardArrays; sinceFired: Float32Array }>('state')));
    const join = (pick: (s: (typeof states)[number]) => ShardArrays, bDec: Float32Array): SaeWeights => {
      const out: Record<string, Float32Array> = { b_dec: new Float32Array(bDec) };
      for (const n of SHARD_PARAMS) {
        if (n !== 'W_enc') { out[n] = concat(states.map((s) => pick(s)[n])); continue; }
        const W = new Float32Array(dIn * dSae);
        states.forEach((s, k) => {
          const [a, b] = range(k, states.length, dSae);
          const part = pick(s).W_enc;
          for (let r = 0; r < dIn; r++) W.set(part.subarray(r * (b - a), (r + 1) * (b - a)), r * dSae + a);
        });
        out.W_enc = W;
      }
      return out as unknown as SaeWeights;
    };
    return {
      weights: join((s) => s.weights, this.bDec),
      adam: { m: join((s) => s.m, this.bDecM), v: join((s) => s.v, this.bDecV), steps: [...this.adamSteps] },
      sinceFired: concat(states.map((s) => s.sinceFired)),
    };
  }

  async dispose(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.call('close').catch(() => null)));
    await Promise.all(this.shards.map((s) => s.terminate()));
  }
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Sum of squared deviations of a [B, d] batch from its mean. */
export function centredSumSq(x: Float32Array, B: number, d: number): number {
  const mean = new Float64Array(d);
  for (let i = 0; i < B * d; i++) mean[i % d] += x[i];
  for (let k = 0; k < d; k++) mean[k] /= B;
  let s = 0;
  for (let i = 0; i < B * d; i++) s += (x[i] - mean[i % d]) ** 2;
  return s;
}
