/**
 * Dead-latent resampling (Bricken et al. 2023, "Towards Monosemanticity", as Anthropic and
 * Gao et al. describe it): a latent that has not fired for a window of training samples is
 * re-initialised towards inputs the SAE reconstructs badly. For each dead latent j:
 *
 *   - draw an input row with probability proportional to its squared reconstruction error;
 *   - decoder row j = the unit direction of that row's residual (x - x_hat);
 *   - encoder column j = the same direction times 0.2 x the mean encoder norm of the live
 *     latents, b_enc[j] = 0, and the threshold set to half the pre-activation the drawn row
 *     gives (JumpReLU: so that the latent fires on the input it was made for);
 *   - its Adam first moments and its samples-since-fired counter reset to zero, its second
 *     moments set to the typical (mean) value of their tensor.
 *
 * It edits an EngineState (snapshot() / restore()), so it works the same on every backend.
 * The forward pass for the residuals is plain JS on one batch: a few times per run.
 */
import type { EngineState } from './engine.js';
import type { SaeConfig } from './jumprelu.js';

export interface ResampleResult {
  state: EngineState;
  resampled: number;
}

/** Latents whose samples-since-fired counter reached the window. */
export function deadLatents(sinceFired: Float32Array, windowSamples: number): number[] {
  const dead: number[] = [];
  sinceFired.forEach((s, j) => {
    if (s >= windowSamples) dead.push(j);
  });
  return dead;
}

export function resampleDead(
  state: EngineState,
  cfg: Pick<SaeConfig, 'dIn' | 'dSae' | 'applyBDecToInput'>,
  x: Float32Array,
  rows: number,
  windowSamples: number,
  random: () => number,
): ResampleResult {
  const dead = deadLatents(state.sinceFired, windowSamples);
  if (dead.length === 0) return { state, resampled: 0 };
  const { dIn, dSae } = cfg;
  const w = state.weights;
  const residuals = forwardResiduals(w, cfg, x, rows);
  const errors = Float64Array.from({ length: rows }, (_, r) => sumSq(residuals, r * dIn, dIn));
  const live = Array.from({ length: dSae }, (_, j) => j).filter((j) => state.sinceFired[j] < windowSamples);
  const liveNorm = live.length
    ? live.reduce((s, j) => s + Math.sqrt(columnSumSq(w.W_enc, j, dIn, dSae)), 0) / live.length
    : 1;
  const encScale = 0.2 * liveNorm;
  for (const j of dead) {
    const r = drawProportional(errors, random);
    const norm = Math.sqrt(errors[r]);
    if (!(norm > 0)) continue;
    let pre = 0;
    for (let i = 0; i < dIn; i++) {
      const d = residuals[r * dIn + i] / norm;
      w.W_dec[j * dIn + i] = d;
      w.W_enc[i * dSae + j] = d * encScale;
      pre += (x[r * dIn + i] - (cfg.applyBDecToInput ? w.b_dec[i] : 0)) * d * encScale;
    }
    w.b_enc[j] = 0;
    w.log_threshold[j] = Math.log(Math.max(0.5 * pre, 1e-6));
    resetAdam(state, j, dIn, dSae);
    state.sinceFired[j] = 0;
  }
  return { state, resampled: dead.length };
}

/** x - x_hat for each row, with the JumpReLU forward pass of the state's weights. */
function forwardResiduals(
  w: EngineState['weights'],
  cfg: Pick<SaeConfig, 'dIn' | 'dSae' | 'applyBDecToInput'>,
  x: Float32Array,
  rows: number,
): Float32Array {
  const { dIn, dSae } = cfg;
  const out = new Float32Array(rows * dIn);
  const z = new Float64Array(dSae);
  const thr = Float64Array.from(w.log_threshold, Math.exp);
  for (let r = 0; r < rows; r++) {
    z.set(w.b_enc);
    for (let i = 0; i < dIn; i++) {
      const xi = x[r * dIn + i] - (cfg.applyBDecToInput ? w.b_dec[i] : 0);
      if (xi === 0) continue;
      const row = i * dSae;
      for (let j = 0; j < dSae; j++) z[j] += xi * w.W_enc[row + j];
    }
    for (let i = 0; i < dIn; i++) out[r * dIn + i] = x[r * dIn + i] - w.b_dec[i];
    for (let j = 0; j < dSae; j++) {
      if (!(z[j] > thr[j])) continue;
      const f = z[j];
      for (let i = 0; i < dIn; i++) out[r * dIn + i] -= f * w.W_dec[j * dIn + i];
    }
  }
  return out;
}

/**
 * First moments to zero; second moments to their tensor's mean, not zero: Adam's bias
 * correction is already ~1 late in a run, so a zero second moment would make the latent's
 * next steps about 1 / sqrt(1 - beta2) = 32x the usual size and can diverge the run.
 */
function resetAdam(state: EngineState, j: number, dIn: number, dSae: number): void {
  const { m, v } = state.adam;
  const mean = (a: Float32Array) => a.reduce((s, x) => s + x, 0) / a.length;
  const typical = {
    W_enc: mean(v.W_enc),
    W_dec: mean(v.W_dec),
    b_enc: mean(v.b_enc),
    log_threshold: mean(v.log_threshold),
  };
  for (let i = 0; i < dIn; i++) {
    m.W_enc[i * dSae + j] = 0;
    m.W_dec[j * dIn + i] = 0;
    v.W_enc[i * dSae + j] = typical.W_enc;
    v.W_dec[j * dIn + i] = typical.W_dec;
  }
  m.b_enc[j] = 0;
  m.log_threshold[j] = 0;
  v.b_enc[j] = typical.b_enc;
  v.log_threshold[j] = typical.log_threshold;
}

function drawProportional(weights: Float64Array, random: () => number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = random() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

function sumSq(a: Float32Array, from: number, n: number): number {
  let s = 0;
  for (let i = from; i < from + n; i++) s += a[i] * a[i];
  return s;
}

function columnSumSq(W: Float32Array, j: number, rows: number, cols: number): number {
  let s = 0;
  for (let i = 0; i < rows; i++) s += W[i * cols + j] ** 2;
  return s;
}
