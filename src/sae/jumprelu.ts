/**
 * The JumpReLU SAE's parameters, their shapes, the seed's initialisation and the Adam groups:
 * what every engine (engine.ts; engines/) shares. The step itself is written once per
 * engine: engines/tfjs.ts is the reference (its closed-form gradients are checked against
 * tfjs autodiff in test/sae/gradients.test.ts), the others are tested against it.
 *
 * Shapes (PyTorch/SAELens convention): W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in]
 * (one unit-norm row per feature), b_dec [d_in], log_threshold [d_sae].
 *
 *   x' = x - b_dec (if applyBDecToInput)     z = x' W_enc + b_enc     thr = exp(log_threshold)
 *   s = 1{z > thr}    f = z * s    x_hat = f W_dec + b_dec
 *   rec = mean_b sum_d (x_hat - x)^2    L0 = mean_b sum_j s    loss = rec + lambda * L0
 */
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
    case 'W_enc':
      return [s.dIn, s.dSae];
    case 'W_dec':
      return [s.dSae, s.dIn];
    case 'b_enc':
    case 'log_threshold':
      return [s.dSae];
    case 'b_dec':
      return [s.dIn];
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

export function mapParams<T>(fn: (name: ParamName) => T): Record<ParamName, T> {
  return Object.fromEntries(PARAM_NAMES.map((n) => [n, fn(n)])) as Record<ParamName, T>;
}
