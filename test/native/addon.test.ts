/**
 * The native CPU addon (native/cpu) driven directly, on small shapes: its fused step against a
 * plain float64 reimplementation of one step (bench/parity-reference.mjs, which the GPU check
 * shares; checked here against src/sae/jumprelu.ts's constants) and against the tfjs reference
 * JumpReluSae), 1 vs 2 threads, chunked vs whole-batch accumulation, the forward-only pass,
 * state round trips and the errors a caller can provoke. Skipped, saying why, when the addon
 * is not built (no compiler or OpenBLAS: `npm run build:native`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JumpReluSae, loadTf } from '../../src/sae/engines/tfjs.js';
import { ADAM_EPS, ADAM_GROUPS, PARAM_NAMES, initialWeights, type SaeConfig } from '../../src/sae/jumprelu.js';
import type { EngineState } from '../../src/sae/engine.js';
import { mulberry32 } from '../../src/random.js';
import type * as Parity from '../../bench/parity-reference.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const { loadNativeAddon } = createRequire(import.meta.url)(join(root, 'native', 'index.cjs'));
const { addon, error: loadError } = loadNativeAddon() as { addon: any; error: string | null };
const skip = loadError ? `native addon not available: ${loadError}` : false;
// The float64 reference step, start states and state comparison, shared with bench/gpu-check.mjs.
const parity: typeof Parity = await import(pathToFileURL(join(root, 'bench', 'parity-reference.mjs')).href);
const { batch, referenceStep, startState, stateDiff, toRef } = parity;

test('the shared parity harness (plain JavaScript) has the constants and initialisation of jumprelu.ts', () => {
  assert.deepEqual(parity.PARAM_NAMES, [...PARAM_NAMES]);
  assert.deepEqual(parity.ADAM_GROUPS, ADAM_GROUPS);
  assert.equal(parity.ADAM_EPS, ADAM_EPS);
  const [ours, theirs] = [parity.mulberry32(9), mulberry32(9)];
  for (let k = 0; k < 5; k++) assert.equal(ours(), theirs());
  const shape = { dIn: 5, dSae: 7 };
  assert.deepEqual(parity.seedWeights(shape, 0.2, mulberry32(3)), initialWeights(shape, 0.2, mulberry32(3)));
});

function newSae(cfg: SaeConfig, threads: number, extra: Record<string, unknown> = {}) {
  return new addon.Sae({ ...cfg, threads, ...extra });
}

for (const [applyBDecToInput, path] of [
  [true, 'dense'],
  [false, 'dense'],
  [true, 'sparse'],
  [false, 'sparse'],
] as const) {
  test(`native ${path} step equals a float64 reference step for step (apply_b_dec_to_input=${applyBDecToInput})`, {
    skip,
  }, () => {
    const cfg: SaeConfig = { dIn: 12, dSae: 40, applyBDecToInput, bandwidth: 0.2 };
    const rng = mulberry32(11);
    const start = startState(cfg, rng);
    const ref = toRef(start);
    const sae = newSae(cfg, 2, { maxChunkRows: 10, path }); // 24 rows in chunks of 10, 10, 4
    sae.setState(start);
    const B = 24,
      lambda = 0.3,
      lr = 3e-3;
    let windowHits = 0;
    for (let step = 0; step < 4; step++) {
      const x = batch(rng, B, cfg.dIn);
      const [rec, l0, totalVar] = sae.step(x, B, lambda, lr);
      const want = referenceStep(cfg, ref, x, B, lambda, lr);
      windowHits += want.windowHits;
      assert.ok(Math.abs(rec - want.rec) <= 1e-5 * want.rec, `step ${step}: rec ${rec} vs ${want.rec}`);
      assert.equal(l0, want.l0, `step ${step}: L0`);
      assert.ok(
        Math.abs(totalVar - want.totalVar) <= 1e-9 * want.totalVar,
        `step ${step}: totalVar ${totalVar} vs ${want.totalVar}`,
      );
      const { worst, where } = stateDiff(sae.getState(), ref);
      assert.ok(
        worst < 2e-5,
        `step ${step}: native and float64 reference differ by ${worst.toExponential(2)} (relative) at ${where}`,
      );
      assert.equal(sae.deadFraction(B), ref.sinceFired.filter((s) => s >= B).length / cfg.dSae);
      assert.equal(sae.lastPath(), path);
    }
    assert.ok(windowHits > 0, 'no sample was in the STE window (the threshold gradient went untested)');
    sae.dispose();
  });
}

test('native step equals the tfjs reference JumpReluSae (cpu backend) over 5 steps', { skip }, async () => {
  const { tf } = await loadTf('cpu');
  const cfg: SaeConfig = { dIn: 16, dSae: 48, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(5);
  const start = startState(cfg, rng);
  const sae = newSae(cfg, 2);
  sae.setState(start);
  const ours = new JumpReluSae(tf, cfg, start.weights);
  const B = 32;
  for (let step = 0; step < 5; step++) {
    const x = batch(rng, B, cfg.dIn);
    const [rec, l0] = sae.step(x, B, 0.2, 2e-3);
    const xt = tf.tensor2d(x, [B, cfg.dIn]);
    const want = ours.trainStep(xt, 0.2, 2e-3);
    xt.dispose();
    assert.ok(Math.abs(rec - want.rec) <= 1e-5 * want.rec, `step ${step}: rec ${rec} vs tfjs ${want.rec}`);
    assert.ok(Math.abs(l0 - want.l0) < 1e-6, `step ${step}: L0 ${l0} vs tfjs ${want.l0}`);
  }
  const tfState: EngineState = ours.state();
  const { worst, where } = stateDiff(sae.getState(), tfState);
  assert.ok(worst < 1e-4, `native and tfjs differ by ${worst.toExponential(2)} (relative) at ${where}`);
  ours.dispose();
  sae.dispose();
});

test('the result does not depend on the thread count, nor on how the batch is chunked', { skip }, () => {
  // Big enough that the addon really uses 2 threads (it keeps small steps on one).
  const cfg: SaeConfig = { dIn: 128, dSae: 512, applyBDecToInput: true, bandwidth: 0.05 };
  const rng = mulberry32(3);
  const start = startState(cfg, rng);
  const B = 300;
  const xs = Array.from({ length: 3 }, () => batch(rng, B, cfg.dIn));
  const run = (threads: number, maxChunkRows?: number, path = 'dense') => {
    const sae = newSae(cfg, threads, { path, ...(maxChunkRows ? { maxChunkRows } : {}) });
    sae.setState(start);
    const stats = xs.map((x) => Array.from(sae.step(x, B, 0.1, 1e-3) as Float64Array));
    const state = sae.getState() as EngineState;
    assert.equal(sae.lastPath(), path, `${threads} thread(s): the path taken`);
    sae.dispose();
    return { stats, state };
  };
  const one = run(1),
    two = run(2),
    chunked = run(2, 64);
  const sparseOne = run(1, 64, 'sparse'),
    sparseTwo = run(2, 64, 'sparse');
  assert.deepEqual(
    two.stats.map((s) => s[1]),
    one.stats.map((s) => s[1]),
    'L0 per step, 1 vs 2 threads',
  );
  // Stated tolerance, relative to each array's largest value: 5e-5. Sums in another order (BLAS
  // partitioning, row chunks, the sparse path) round differently in float32, and Adam's m / sqrt(v)
  // magnifies that where a gradient is near zero (seen: 6e-7 threads, 1e-5 chunks, 3e-6 sparse).
  const tol = 5e-5;
  assert.ok(stateDiff(two.state, one.state).worst < tol, `1 vs 2 threads: ${stateDiff(two.state, one.state).where}`);
  assert.ok(
    stateDiff(chunked.state, one.state).worst < tol,
    `chunked vs whole: ${stateDiff(chunked.state, one.state).where}`,
  );
  two.stats.forEach((s, k) =>
    assert.ok(Math.abs(s[0] - one.stats[k][0]) <= 1e-6 * one.stats[k][0], 'rec, 1 vs 2 threads'),
  );
  // The sparse path sums in a fixed order of features and rows; only the BLAS's encoder product may round differently.
  assert.ok(
    stateDiff(sparseTwo.state, sparseOne.state).worst < tol,
    `sparse, 1 vs 2 threads: ${stateDiff(sparseTwo.state, sparseOne.state).where}`,
  );
  assert.deepEqual(
    sparseTwo.stats.map((s) => s[1]),
    sparseOne.stats.map((s) => s[1]),
    'sparse path L0, 1 vs 2 threads',
  );
  assert.ok(
    stateDiff(sparseOne.state, one.state).worst < tol,
    `sparse vs dense: ${stateDiff(sparseOne.state, one.state).where}`,
  );
});

test('path auto: dense while many features fire, sparse once few do, dense again when they fire again', {
  skip,
}, () => {
  const cfg: SaeConfig = { dIn: 32, dSae: 128, applyBDecToInput: true, bandwidth: 0.01 };
  const rng = mulberry32(4);
  const start = startState(cfg, rng);
  const B = 64;
  const x = batch(rng, B, cfg.dIn);
  const sae = newSae(cfg, 2);
  sae.setState(start);
  sae.step(x, B, 0.1, 1e-4);
  assert.equal(sae.lastPath(), 'dense', 'about half the features fire: dense');
  // High thresholds: about 1% of (row, feature) pairs fire.
  const sparse = structuredClone(start);
  sparse.weights.log_threshold.fill(Math.log(1.3));
  sae.setState(sparse);
  const ref = newSae(cfg, 2, { path: 'dense' });
  ref.setState(sparse);
  for (let k = 0; k < 3; k++) {
    const [, l0] = sae.step(x, B, 0.1, 1e-4);
    ref.step(x, B, 0.1, 1e-4);
    assert.ok(l0 > 0 && l0 < 0.05 * cfg.dSae, `L0 ${l0}`);
  }
  assert.equal(sae.lastPath(), 'sparse');
  assert.ok(stateDiff(sae.getState(), ref.getState()).worst < 1e-5, stateDiff(sae.getState(), ref.getState()).where);
  sae.setState(start); // dense again: the sparse attempt gives up within the step, the dense path runs it
  const [, l0] = sae.step(x, B, 0.1, 1e-4);
  ref.setState(start);
  const [, l0Ref] = ref.step(x, B, 0.1, 1e-4);
  assert.equal(l0, l0Ref);
  assert.equal(sae.lastPath(), 'dense');
  assert.ok(stateDiff(sae.getState(), ref.getState()).worst < 1e-5, stateDiff(sae.getState(), ref.getState()).where);
  sae.dispose();
  ref.dispose();
});

test('evaluate is the forward pass only: squared error, active count and firings per feature', { skip }, () => {
  const cfg: SaeConfig = { dIn: 10, dSae: 30, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(9);
  const start = startState(cfg, rng);
  const sae = newSae(cfg, 2, { maxChunkRows: 8 });
  sae.setState(start);
  const B = 20;
  const x = batch(rng, B, cfg.dIn);
  const fired = new Float32Array(cfg.dSae);
  const [sqErr, active] = sae.evaluate(x, B, fired);
  const want = referenceStep(cfg, toRef(start), x, B, 0, 0);
  assert.ok(Math.abs(sqErr - want.sqErr) <= 1e-5 * want.sqErr, `sqErr ${sqErr} vs ${want.sqErr}`);
  assert.equal(active, want.active);
  assert.deepEqual(Array.from(fired), Array.from(want.fired));
  assert.equal(stateDiff(sae.getState(), start).worst, 0, 'evaluate changed the state');
  sae.dispose();
});

test('setState / getState round-trip every array exactly (W_enc is stored transposed inside)', { skip }, () => {
  const cfg: SaeConfig = { dIn: 7, dSae: 33, applyBDecToInput: false, bandwidth: 0.1 };
  const rng = mulberry32(2);
  const s = startState(cfg, rng);
  for (const n of PARAM_NAMES) {
    s.adam.m[n].forEach((_, k) => (s.adam.m[n][k] = rng()));
    s.adam.v[n].forEach((_, k) => (s.adam.v[n][k] = rng()));
  }
  s.adam.steps = [5, 6, 7];
  s.sinceFired.forEach((_, k) => (s.sinceFired[k] = 1000 * k));
  const sae = newSae(cfg, 1);
  sae.setState(s);
  const back = sae.getState();
  assert.deepEqual(back, s);
  assert.notEqual(back.weights.W_enc, s.weights.W_enc, 'getState must return new arrays');
  assert.ok(sae.bytes() >= 4 * 6 * cfg.dIn * cfg.dSae, `bytes() ${sae.bytes()} below the state size`);
  sae.dispose();
});

test('the state one array at a time, and setState without Adam state (a fresh start)', { skip }, () => {
  const cfg: SaeConfig = { dIn: 6, dSae: 20, applyBDecToInput: true, bandwidth: 0.1 };
  const rng = mulberry32(8);
  const s = startState(cfg, rng);
  const sae = newSae(cfg, 1);
  sae.setState(s);
  sae.step(batch(rng, 16, cfg.dIn), 16, 0.1, 1e-3); // non-zero moments and counters
  const full = sae.getState() as EngineState;
  for (const n of PARAM_NAMES) {
    assert.deepEqual(sae.getArray(`weights.${n}`), full.weights[n]);
    assert.deepEqual(sae.getArray(`adam.m.${n}`), full.adam.m[n]);
    assert.deepEqual(sae.getArray(`adam.v.${n}`), full.adam.v[n]);
  }
  assert.deepEqual(sae.getArray('sinceFired'), full.sinceFired);
  assert.deepEqual(sae.getSteps(), [1, 1, 1]);
  // A fresh start: weights only, the rest zero.
  sae.setState({ weights: s.weights });
  assert.deepEqual(sae.getState(), s);
  // Back, one array at a time.
  for (const n of PARAM_NAMES) {
    sae.setArray(`weights.${n}`, full.weights[n]);
    sae.setArray(`adam.m.${n}`, full.adam.m[n]);
    sae.setArray(`adam.v.${n}`, full.adam.v[n]);
  }
  sae.setArray('sinceFired', full.sinceFired);
  sae.setSteps(full.adam.steps);
  assert.deepEqual(sae.getState(), full);
  assert.throws(() => sae.getArray('weights.W_foo'), /Sae.getArray: unknown array 'weights.W_foo'/);
  assert.throws(
    () => sae.setArray('adam.m.b_enc', new Float32Array(3)),
    /Sae.setArray: adam.m.b_enc has 3 values, expected 20/,
  );
  assert.throws(() => sae.setSteps([1, -1, 1]), /Sae.setSteps: steps\[1\] must be a non-negative integer/);
  sae.dispose();
});

test('bad arguments throw clear errors and leave the state untouched; a disposed Sae throws', { skip }, () => {
  const cfg: SaeConfig = { dIn: 4, dSae: 8, applyBDecToInput: true, bandwidth: 0.1 };
  const s = startState(cfg, mulberry32(1));
  assert.throws(() => new addon.Sae({ ...cfg, dIn: 0, threads: 1 }), /new Sae: dIn must be a positive integer/);
  assert.throws(() => new addon.Sae({ ...cfg, threads: 1.5 }), /new Sae: threads must be a positive integer/);
  assert.throws(() => new addon.Sae({ ...cfg, bandwidth: -1, threads: 1 }), /bandwidth must be a positive number/);
  const sae = newSae(cfg, 1);
  sae.setState(s);
  const bad = structuredClone(s);
  bad.weights.b_dec = new Float32Array(3);
  bad.weights.W_enc = new Float32Array(cfg.dIn * cfg.dSae).fill(9); // valid, but must not be applied
  assert.throws(() => sae.setState(bad), /Sae.setState: state.weights.b_dec has 3 values, expected 4/);
  assert.deepEqual(sae.getState(), s, 'a rejected setState changed the state');
  assert.throws(
    () => sae.setState({ ...s, adam: { ...s.adam, steps: [1, 2] } }),
    /state.adam.steps must be an array of 3/,
  );
  assert.throws(
    () => sae.step(new Float32Array(4 * 3 - 1), 3, 0.1, 1e-3),
    /Sae.step: x has 11 values, expected at least 12/,
  );
  assert.throws(() => sae.step(new Float64Array(12), 3, 0.1, 1e-3), /Sae.step: x must be a Float32Array/);
  assert.throws(() => sae.step(new Float32Array(12), 0, 0.1, 1e-3), /Sae.step: rows must be a positive integer/);
  assert.throws(() => sae.step(new Float32Array(12), 3, NaN, 1e-3), /Sae.step: lambda must be finite/);
  assert.throws(
    () => sae.evaluate(new Float32Array(12), 3, new Float32Array(7)),
    /Sae.evaluate: fired has 7 values, expected 8/,
  );
  assert.deepEqual(sae.getState(), s, 'a rejected call changed the state');
  sae.dispose();
  assert.throws(() => sae.step(new Float32Array(12), 3, 0.1, 1e-3), /Sae.step: this Sae was disposed/);
  assert.throws(() => sae.getState(), /Sae.getState: this Sae was disposed/);
  sae.dispose(); // twice is harmless
});

test('info names the BLAS and estimateBytes covers the state and the chunk scratch', { skip }, () => {
  const info = addon.info();
  assert.match(info.blas, /^OpenBLAS \d/);
  assert.equal(typeof info.coretype, 'string');
  const state = 4 * 6 * 2048 * 16384;
  const est = addon.estimateBytes(2048, 16384, 4096);
  // Scratch: [chunk, d_sae] capped near 64 MiB, g for the batch (32 MiB), sparse entries capped at 64 MiB.
  assert.ok(est > state && est < state + 170 * 2 ** 20, `estimateBytes(2048, 16384, 4096) = ${est}`);
});
