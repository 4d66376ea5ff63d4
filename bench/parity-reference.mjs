/**
 * The parity harness of the native engines, shared by their tests (test/native/) and by the GPU
 * check (bench/gpu-check.mjs). The GPU check runs from a working-tree copy with only node and the
 * built addons (no node_modules, no dist/), so this is plain JavaScript that imports nothing; its
 * types are in parity-reference.d.mts, and test/native checks that its constants and its
 * initialisation equal src/sae/jumprelu.ts's, so this copy cannot drift.
 *
 *   startState     a training state with non-trivial biases and thresholds (every path and the
 *                  STE window exercised), from the seed's initialisation;
 *   referenceStep  one training step in float64, loop by loop (the math of src/sae/jumprelu.ts);
 *   stateDiff      the largest difference between two states, relative to each array's scale.
 */

export const PARAM_NAMES = ['W_enc', 'b_enc', 'W_dec', 'b_dec', 'log_threshold'];
/** Adam groups, PyTorch semantics (src/sae/jumprelu.ts ADAM_GROUPS). */
export const ADAM_GROUPS = [
  { params: ['W_enc', 'b_enc'], beta1: 0.0, beta2: 0.999, lrScale: 1 },
  { params: ['W_dec', 'b_dec'], beta1: 0.0, beta2: 0.999, lrScale: 1 },
  { params: ['log_threshold'], beta1: 0.99, beta2: 0.999, lrScale: 2 },
];
export const ADAM_EPS = 1e-8;

/** The seeded generator of src/random.ts. */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** src/sae/jumprelu.ts initialWeights: W_dec uniform in +-1/sqrt(d_sae) with unit rows, W_enc its transpose. */
export function seedWeights(cfg, thresholdInit, rng) {
  const { dIn, dSae } = cfg;
  const W_dec = new Float32Array(dSae * dIn);
  const bound = 1 / Math.sqrt(dSae);
  for (let i = 0; i < W_dec.length; i++) W_dec[i] = (2 * rng() - 1) * bound;
  const W_enc = new Float32Array(dIn * dSae);
  for (let j = 0; j < dSae; j++) {
    const row = W_dec.subarray(j * dIn, (j + 1) * dIn);
    let n = 0;
    for (const v of row) n += v * v;
    n = Math.sqrt(n) || 1;
    for (let k = 0; k < dIn; k++) row[k] /= n;
    for (let k = 0; k < dIn; k++) W_enc[k * dSae + j] = row[k];
  }
  return {
    W_enc,
    b_enc: new Float32Array(dSae),
    W_dec,
    b_dec: new Float32Array(dIn),
    log_threshold: new Float32Array(dSae).fill(Math.log(thresholdInit)),
  };
}

/** Fresh weights with non-trivial biases and thresholds, zero Adam moments and counters. */
export function startState(cfg, rng) {
  const w = seedWeights(cfg, 0.2, rng);
  w.b_enc.forEach((_, i) => (w.b_enc[i] = 0.3 * (rng() - 0.5)));
  w.b_dec.forEach((_, i) => (w.b_dec[i] = 0.3 * (rng() - 0.5)));
  w.log_threshold.forEach((_, i) => (w.log_threshold[i] = Math.log(0.05 + 0.3 * rng())));
  const zeros = () => Object.fromEntries(PARAM_NAMES.map((n) => [n, new Float32Array(w[n].length)]));
  return { weights: w, adam: { m: zeros(), v: zeros(), steps: [0, 0, 0] }, sinceFired: new Float32Array(cfg.dSae) };
}

/** Rows x d_in values uniform in [-1, 1). */
export function batch(rng, rows, dIn) {
  return Float32Array.from({ length: rows * dIn }, () => 2 * rng() - 1);
}

/** The whole training state in float64: what the reference step reads and writes. */
export function toRef(s) {
  const f64 = (r) => Object.fromEntries(PARAM_NAMES.map((n) => [n, Float64Array.from(r[n])]));
  return {
    p: f64(s.weights),
    m: f64(s.adam.m),
    v: f64(s.adam.v),
    steps: [...s.adam.steps],
    sinceFired: Float64Array.from(s.sinceFired),
  };
}

/** One step in float64 on the state `st` (updated in place): forward, gradients, Adam, renormalisation. */
export function referenceStep(cfg, st, x, B, lambda, lr) {
  const { dIn, dSae, bandwidth: bw } = cfg;
  const { W_enc, b_enc, W_dec, b_dec, log_threshold } = st.p;
  const thr = log_threshold.map(Math.exp);
  const xc = new Float64Array(B * dIn);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < dIn; i++) xc[b * dIn + i] = x[b * dIn + i] - (cfg.applyBDecToInput ? b_dec[i] : 0);
  const z = new Float64Array(B * dSae);
  for (let b = 0; b < B; b++)
    for (let j = 0; j < dSae; j++) {
      let s = b_enc[j];
      for (let i = 0; i < dIn; i++) s += xc[b * dIn + i] * W_enc[i * dSae + j];
      z[b * dSae + j] = s;
    }
  const f = z.map((v, k) => (v > thr[k % dSae] ? v : 0));
  const g = new Float64Array(B * dIn);
  let rec = 0;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < dIn; i++) {
      let s = b_dec[i];
      for (let j = 0; j < dSae; j++) s += f[b * dSae + j] * W_dec[j * dIn + i];
      const e = s - x[b * dIn + i];
      rec += e * e;
      g[b * dIn + i] = (2 * e) / B;
    }
  let active = 0;
  const fired = new Float64Array(dSae);
  f.forEach((v, k) => {
    if (v === 0) return;
    fired[k % dSae]++;
    active++;
  });
  // Backward.
  const grad = Object.fromEntries(PARAM_NAMES.map((n) => [n, new Float64Array(st.p[n].length)]));
  let windowHits = 0;
  for (let b = 0; b < B; b++)
    for (let j = 0; j < dSae; j++) {
      let df = 0;
      for (let i = 0; i < dIn; i++) df += g[b * dIn + i] * W_dec[j * dIn + i];
      const zj = z[b * dSae + j];
      const dz = zj > thr[j] ? df : 0;
      for (let i = 0; i < dIn; i++) {
        grad.W_dec[j * dIn + i] += f[b * dSae + j] * g[b * dIn + i];
        grad.W_enc[i * dSae + j] += xc[b * dIn + i] * dz;
      }
      grad.b_enc[j] += dz;
      if (Math.abs(Math.max(zj, 0) - thr[j]) < bw / 2) {
        windowHits++;
        grad.log_threshold[j] += (-1 / bw) * (df * zj + lambda / B) * thr[j];
      }
    }
  for (let i = 0; i < dIn; i++) {
    for (let b = 0; b < B; b++) grad.b_dec[i] += g[b * dIn + i];
    if (cfg.applyBDecToInput) for (let j = 0; j < dSae; j++) grad.b_dec[i] -= W_enc[i * dSae + j] * grad.b_enc[j];
  }
  for (let j = 0; j < dSae; j++) {
    let along = 0;
    for (let i = 0; i < dIn; i++) along += W_dec[j * dIn + i] * grad.W_dec[j * dIn + i];
    for (let i = 0; i < dIn; i++) grad.W_dec[j * dIn + i] -= along * W_dec[j * dIn + i];
  }
  // Adam, PyTorch's rule, three groups.
  ADAM_GROUPS.forEach((group, gi) => {
    const t = ++st.steps[gi];
    const stepSize = (lr * group.lrScale) / (1 - group.beta1 ** t);
    const sqrtBc2 = Math.sqrt(1 - group.beta2 ** t);
    for (const n of group.params) {
      const { p, m, v } = { p: st.p[n], m: st.m[n], v: st.v[n] };
      for (let k = 0; k < p.length; k++) {
        m[k] = group.beta1 * m[k] + (1 - group.beta1) * grad[n][k];
        v[k] = group.beta2 * v[k] + (1 - group.beta2) * grad[n][k] ** 2;
        p[k] -= (stepSize * m[k]) / (Math.sqrt(v[k]) / sqrtBc2 + ADAM_EPS);
      }
    }
  });
  for (let j = 0; j < dSae; j++) {
    let n2 = 0;
    for (let i = 0; i < dIn; i++) n2 += W_dec[j * dIn + i] ** 2;
    for (let i = 0; i < dIn; i++) W_dec[j * dIn + i] /= Math.sqrt(n2);
  }
  fired.forEach((c, j) => (st.sinceFired[j] = c > 0 ? 0 : st.sinceFired[j] + B));
  let totalVar = 0;
  for (let i = 0; i < dIn; i++) {
    let mean = 0;
    for (let b = 0; b < B; b++) mean += x[b * dIn + i] / B;
    for (let b = 0; b < B; b++) totalVar += (x[b * dIn + i] - mean) ** 2;
  }
  return { rec: rec / B, l0: active / B, totalVar, fired, windowHits, sqErr: rec, active };
}

/**
 * Largest |a - b| relative to each array's largest |b|: over the weights, and over everything
 * (weights, Adam moments, counters), with where the latter is. `b` is a state or its toRef form.
 * Arrays of different lengths, or different Adam step counts, are an error (not a difference).
 */
export function stateDiff(a, b) {
  const ref = 'p' in b ? b : toRef(b);
  if (a.adam.steps.join() !== ref.steps.join())
    throw new Error(`Adam steps differ: ${a.adam.steps.join(',')} vs ${ref.steps.join(',')}`);
  let worstWeights = 0;
  let worst = 0;
  let where = 'nowhere';
  const cmp = (label, x, y, isWeight) => {
    if (x.length !== y.length) throw new Error(`${label}: length ${x.length} vs ${y.length}`);
    let scale = 1e-12;
    for (let k = 0; k < y.length; k++) scale = Math.max(scale, Math.abs(y[k]));
    for (let k = 0; k < y.length; k++) {
      const d = Math.abs(x[k] - y[k]) / scale;
      const dd = Number.isNaN(d) ? Infinity : d;
      if (isWeight && !(dd <= worstWeights)) worstWeights = dd;
      if (!(dd <= worst)) [worst, where] = [dd, `${label}[${k}]: ${x[k]} vs ${y[k]}`];
    }
  };
  for (const n of PARAM_NAMES) {
    cmp(`weights.${n}`, a.weights[n], ref.p[n], true);
    cmp(`adam.m.${n}`, a.adam.m[n], ref.m[n], false);
    cmp(`adam.v.${n}`, a.adam.v[n], ref.v[n], false);
  }
  cmp('sinceFired', a.sinceFired, ref.sinceFired, false);
  return { worst, worstWeights, where };
}
