/**
 * Training metrics: the metrics.jsonl writer (kept in workDir while training so that a resumed
 * run continues the same file), evaluation accumulators and ground-truth recovery.
 */
import { existsSync, readFileSync, writeFileSync, appendFileSync } from 'node:fs';

/** Appends JSON lines; on resume keeps the config line and every train line before `fromStep`. */
export class MetricsLog {
  constructor(readonly path: string) {}

  start(config: Record<string, unknown>, resumeFromStep: number | null): void {
    if (resumeFromStep !== null && existsSync(this.path)) {
      const kept = readFileSync(this.path, 'utf8')
        .split('\n')
        .filter((line) => {
          if (!line.trim()) return false;
          const rec = JSON.parse(line);
          return rec.type === 'config' || (rec.type === 'train' && rec.step <= resumeFromStep);
        });
      writeFileSync(this.path, kept.map((l) => l + '\n').join(''));
      if (kept.length > 0) return;
    }
    writeFileSync(this.path, JSON.stringify({ type: 'config', ...config }) + '\n');
  }

  write(record: Record<string, unknown>): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}

/** Sums over the held-out split; FVU uses the variance about the whole split's mean. */
export class EvalAccumulator {
  private sqErr = 0;
  private active = 0;
  private rows = 0;
  private readonly sum: Float64Array;
  private readonly sumSq: Float64Array;
  private readonly everFired: Uint8Array;

  constructor(
    readonly dIn: number,
    dSae: number,
  ) {
    this.sum = new Float64Array(dIn);
    this.sumSq = new Float64Array(dIn);
    this.everFired = new Uint8Array(dSae);
  }

  add(x: Float32Array, rows: number, r: { sqErr: number; active: number; fired: Float32Array }): void {
    this.sqErr += r.sqErr;
    this.active += r.active;
    this.rows += rows;
    for (let i = 0; i < rows; i++) {
      for (let k = 0; k < this.dIn; k++) {
        const v = x[i * this.dIn + k];
        this.sum[k] += v;
        this.sumSq[k] += v * v;
      }
    }
    r.fired.forEach((c, j) => {
      if (c > 0) this.everFired[j] = 1;
    });
  }

  result(): { rows: number; mse: number; l0: number; fvu: number; dead_frac: number } {
    let totalVar = 0;
    for (let k = 0; k < this.dIn; k++) totalVar += this.sumSq[k] - (this.sum[k] * this.sum[k]) / this.rows;
    const dead = this.everFired.reduce((n, f) => n + (f ? 0 : 1), 0);
    return {
      rows: this.rows,
      mse: this.sqErr / this.rows,
      l0: this.active / this.rows,
      fvu: totalVar > 0 ? this.sqErr / totalVar : NaN,
      dead_frac: dead / this.everFired.length,
    };
  }
}

/**
 * Ground-truth recovery: for each true feature, the best cosine similarity with any learned
 * decoder row; returns the mean of those maxima and the fraction above 0.9. Plain JS in
 * float64, so it is the same whichever engine trained (ground truth exists only for
 * synthetic data, at small sizes).
 */
export function recovery(trueFeatures: Float32Array, nTrue: number, W_dec: Float32Array, dSae: number, d: number) {
  const norms = (m: Float32Array, rows: number) =>
    Float64Array.from(
      { length: rows },
      (_, r) => Math.sqrt(m.subarray(r * d, (r + 1) * d).reduce((a, v) => a + v * v, 0)) + 1e-12,
    );
  const tNorm = norms(trueFeatures, nTrue),
    dNorm = norms(W_dec, dSae);
  let sum = 0,
    above = 0;
  for (let t = 0; t < nTrue; t++) {
    const tf = trueFeatures.subarray(t * d, (t + 1) * d);
    let best = -Infinity;
    for (let j = 0; j < dSae; j++) {
      let dot = 0;
      for (let k = 0; k < d; k++) dot += tf[k] * W_dec[j * d + k];
      best = Math.max(best, dot / (tNorm[t] * dNorm[j]));
    }
    sum += best;
    if (best > 0.9) above++;
  }
  return { recovery_mean_max_cos: sum / nTrue, recovery_frac_above_0_9: above / nTrue };
}
