/**
 * The CUDA engine's kernels, checked without a GPU: the emulation build of native/cuda (the same
 * kernel source compiled as host C++, launches run as loops, OpenBLAS in place of cuBLAS) against
 * the native CPU addon and the tfjs reference JumpReluSae. These tests check the kernels'
 * arithmetic and the addon's API, NOT the device: launch limits, device memory, the driver and
 * cuBLAS itself are only exercised by bench/gpu-check.sh on a GPU machine.
 *
 * Also here: the device build (nvcc) loads on this GPU-less machine and says why it cannot run,
 * and the backend ladder's messages for it. Each part skips, saying why, when its build is missing
 * (`npm run build:cuda`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { JumpReluSae, loadTf } from '../../src/sae/engines/tfjs.js';
import { PARAM_NAMES, type SaeConfig } from '../../src/sae/jumprelu.js';
import type { EngineState } from '../../src/sae/engine.js';
import { CUDA_ADDON, CUDA_EMULATED_ADDON, createCudaEngine, cudaStatus } from '../../src/sae/engines/cuda.js';
import { createNativeEngine } from '../../src/sae/engines/native.js';
import { chooseEngine } from '../../src/sae/backend.js';
import { mulberry32 } from '../../src/random.js';
import type * as Parity from '../../bench/parity-reference.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const require = createRequire(import.meta.url);
const emulated = existsSync(CUDA_EMULATED_ADDON) ? require(CUDA_EMULATED_ADDON) : null;
const skipEmulated = emulated
  ? false
  : `the CUDA emulation build is missing (${CUDA_EMULATED_ADDON}; npm run build:cuda needs g++ and OpenBLAS)`;
const { addon: cpu, error: cpuError } = require(join(root, 'native', 'index.cjs')).loadNativeAddon() as {
  addon: any;
  error: string | null;
};
const skipCpu = skipEmulated || (cpuError ? `native CPU addon not available: ${cpuError}` : false);
const skipDevice = existsSync(CUDA_ADDON)
  ? false
  : `the CUDA device build is missing (${CUDA_ADDON}; npm run build:cuda needs nvcc)`;

// Start states, batches and the state comparison: the parity harness test/native/addon.test.ts and
// bench/gpu-check.mjs share.
const { batch, startState, stateDiff }: typeof Parity = await import(
  pathToFileURL(join(root, 'bench', 'parity-reference.mjs')).href
);

// Stated tolerance, relative to each array's largest value, as for the CPU addon: 5e-5. The two
// sum in another order (BLAS partitioning, float vs double accumulators), and Adam's m / sqrt(v)
// magnifies that where a gradient is near zero.
const TOL = 5e-5;

for (const applyBDecToInput of [true, false]) {
  test(`emulated CUDA kernels equal the native CPU addon step for step (apply_b_dec_to_input=${applyBDecToInput})`, {
    skip: skipCpu,
  }, () => {
    const cfg: SaeConfig = { dIn: 16, dSae: 64, applyBDecToInput, bandwidth: 0.2 };
    const rng = mulberry32(21);
    const start = startState(cfg, rng);
    start.weights.log_threshold.fill(Math.log(3), 0, 6); // features that never fire: the dead counters count up
    const gpu = new emulated.Sae(cfg);
    const ref = new cpu.Sae({ ...cfg, threads: 1, path: 'dense' });
    gpu.setState(start);
    ref.setState(start);
    const B = 40;
    for (let step = 0; step < 6; step++) {
      const x = batch(rng, B, cfg.dIn);
      const [rec, l0, totalVar] = gpu.step(x, B, 0.3, 3e-3);
      const [recRef, l0Ref, totalVarRef] = ref.step(x, B, 0.3, 3e-3);
      assert.ok(Math.abs(rec - recRef) <= 1e-5 * recRef, `step ${step}: rec ${rec} vs ${recRef}`);
      assert.equal(l0, l0Ref, `step ${step}: L0`);
      assert.ok(
        Math.abs(totalVar - totalVarRef) <= 1e-9 * totalVarRef,
        `step ${step}: totalVar ${totalVar} vs ${totalVarRef}`,
      );
      const { worst, where } = stateDiff(gpu.getState(), ref.getState());
      assert.ok(
        worst < TOL,
        `step ${step}: emulated CUDA and CPU differ by ${worst.toExponential(2)} (relative) at ${where}`,
      );
      assert.equal(gpu.deadFraction(B), ref.deadFraction(B), `step ${step}: dead fraction`);
    }
    const firedOnce = gpu.getState().sinceFired.some((s: number) => s === 0);
    const neverFired = gpu.getState().sinceFired.some((s: number) => s > 0);
    assert.ok(firedOnce && neverFired, 'the dead-feature counter went untested (all features fired, or none)');
    gpu.dispose();
    ref.dispose();
  });
}

test('emulated CUDA kernels equal the CPU addon where the column sums split the batch into segments of several rows', {
  skip: skipCpu,
}, () => {
  // d_sae 8192: 32 row segments of 3 rows for the feature columns, 96 of 1 row for the 8 input columns (step.cu segmentsFor).
  const cfg: SaeConfig = { dIn: 8, dSae: 8192, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(23);
  const start = startState(cfg, rng);
  const gpu = new emulated.Sae(cfg);
  const ref = new cpu.Sae({ ...cfg, threads: 1, path: 'dense' });
  gpu.setState(start);
  ref.setState(start);
  for (let step = 0; step < 2; step++) {
    const x = batch(rng, 96, cfg.dIn);
    const [rec, l0, totalVar] = gpu.step(x, 96, 0.3, 3e-3);
    const [recRef, l0Ref, totalVarRef] = ref.step(x, 96, 0.3, 3e-3);
    assert.ok(Math.abs(rec - recRef) <= 1e-5 * recRef, `step ${step}: rec ${rec} vs ${recRef}`);
    assert.equal(l0, l0Ref, `step ${step}: L0`);
    assert.ok(Math.abs(totalVar - totalVarRef) <= 1e-9 * totalVarRef, `step ${step}: totalVar`);
  }
  const { worst, where } = stateDiff(gpu.getState(), ref.getState());
  assert.ok(worst < TOL, `emulated CUDA and CPU differ by ${worst.toExponential(2)} (relative) at ${where}`);
  gpu.dispose();
  ref.dispose();
});

test('emulated CUDA kernels equal the tfjs reference JumpReluSae (cpu backend) over 5 steps', {
  skip: skipEmulated,
}, async () => {
  const { tf } = await loadTf('cpu');
  const cfg: SaeConfig = { dIn: 16, dSae: 48, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(5);
  const start = startState(cfg, rng);
  const gpu = new emulated.Sae(cfg);
  gpu.setState(start);
  const ours = new JumpReluSae(tf, cfg, start.weights);
  const B = 32;
  for (let step = 0; step < 5; step++) {
    const x = batch(rng, B, cfg.dIn);
    const [rec, l0] = gpu.step(x, B, 0.2, 2e-3);
    const xt = tf.tensor2d(x, [B, cfg.dIn]);
    const want = ours.trainStep(xt, 0.2, 2e-3);
    xt.dispose();
    assert.ok(Math.abs(rec - want.rec) <= 1e-5 * want.rec, `step ${step}: rec ${rec} vs tfjs ${want.rec}`);
    assert.ok(Math.abs(l0 - want.l0) < 1e-6, `step ${step}: L0 ${l0} vs tfjs ${want.l0}`);
  }
  const { worst, where } = stateDiff(gpu.getState(), ours.state());
  assert.ok(worst < 1e-4, `emulated CUDA and tfjs differ by ${worst.toExponential(2)} (relative) at ${where}`);
  ours.dispose();
  gpu.dispose();
});

test('the gemm kernel (the device build without cuBLAS) gives the step of the BLAS products', {
  skip: skipEmulated,
}, () => {
  const cfg: SaeConfig = { dIn: 12, dSae: 40, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(7);
  const start = startState(cfg, rng);
  const xs = Array.from({ length: 3 }, () => batch(rng, 24, cfg.dIn));
  const run = () => {
    const sae = new emulated.Sae(cfg);
    sae.setState(start);
    const stats = xs.map((x) => Array.from(sae.step(x, 24, 0.3, 3e-3) as Float64Array));
    const state = sae.getState() as EngineState;
    sae.dispose();
    return { stats, state };
  };
  const blas = run();
  process.env.SAE_CUDA_BLAS = 'kernel';
  try {
    assert.match(emulated.info().blas, /gemm kernel/);
    const kernel = run();
    assert.deepEqual(
      kernel.stats.map((s) => s[1]),
      blas.stats.map((s) => s[1]),
      'L0 per step',
    );
    const { worst, where } = stateDiff(kernel.state, blas.state);
    assert.ok(worst < TOL, `gemm kernel vs OpenBLAS: ${worst.toExponential(2)} at ${where}`);
  } finally {
    delete process.env.SAE_CUDA_BLAS;
  }
});

test('emulated CUDA: a checkpoint (state out, into a new Sae) resumes exactly; a weights-only state is a fresh start', {
  skip: skipEmulated,
}, () => {
  const cfg: SaeConfig = { dIn: 10, dSae: 30, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(13);
  const start = startState(cfg, rng);
  const xs = Array.from({ length: 4 }, () => batch(rng, 16, cfg.dIn));
  const whole = new emulated.Sae(cfg);
  whole.setState({ weights: start.weights }); // a fresh start: zero moments, steps and counters
  assert.deepEqual(whole.getState(), start);
  xs.forEach((x) => whole.step(x, 16, 0.1, 1e-3));
  const first = new emulated.Sae(cfg);
  first.setState(start);
  xs.slice(0, 2).forEach((x) => first.step(x, 16, 0.1, 1e-3));
  const resumed = new emulated.Sae(cfg);
  // One array at a time, as a checkpoint writes and reads them.
  for (const n of PARAM_NAMES)
    for (const p of [`weights.${n}`, `adam.m.${n}`, `adam.v.${n}`]) resumed.setArray(p, first.getArray(p));
  resumed.setArray('sinceFired', first.getArray('sinceFired'));
  resumed.setSteps(first.getSteps());
  first.dispose();
  xs.slice(2).forEach((x) => resumed.step(x, 16, 0.1, 1e-3));
  assert.deepEqual(resumed.getState(), whole.getState());
  whole.dispose();
  resumed.dispose();
});

test('emulated CUDA evaluate is the forward pass only and equals the CPU addon', { skip: skipCpu }, () => {
  const cfg: SaeConfig = { dIn: 10, dSae: 30, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(9);
  const start = startState(cfg, rng);
  const gpu = new emulated.Sae(cfg);
  const ref = new cpu.Sae({ ...cfg, threads: 1 });
  gpu.setState(start);
  ref.setState(start);
  const x = batch(rng, 20, cfg.dIn);
  const fired = new Float32Array(cfg.dSae),
    firedRef = new Float32Array(cfg.dSae);
  const [sqErr, active] = gpu.evaluate(x, 20, fired);
  const [sqErrRef, activeRef] = ref.evaluate(x, 20, firedRef);
  assert.ok(Math.abs(sqErr - sqErrRef) <= 1e-5 * sqErrRef, `sqErr ${sqErr} vs ${sqErrRef}`);
  assert.equal(active, activeRef);
  assert.deepEqual(fired, firedRef);
  assert.deepEqual(gpu.getState(), start, 'evaluate changed the state');
  gpu.dispose();
  ref.dispose();
});

test('emulated CUDA: bad arguments throw clear errors and leave the state untouched; a disposed Sae throws', {
  skip: skipEmulated,
}, () => {
  const cfg: SaeConfig = { dIn: 4, dSae: 8, applyBDecToInput: true, bandwidth: 0.1 };
  const s = startState(cfg, mulberry32(1));
  assert.throws(() => new emulated.Sae({ ...cfg, dIn: 0 }), /new Sae: dIn must be a positive integer/);
  assert.throws(() => new emulated.Sae({ ...cfg, bandwidth: -1 }), /new Sae: bandwidth must be a positive number/);
  assert.throws(() => new emulated.Sae({ ...cfg, allowTf32: 'yes' }), /new Sae: allowTf32 must be a boolean/);
  const sae = new emulated.Sae(cfg);
  sae.setState(s);
  const bad = structuredClone(s);
  bad.weights.b_dec = new Float32Array(3);
  bad.weights.W_enc = new Float32Array(cfg.dIn * cfg.dSae).fill(9); // valid, but must not be applied
  assert.throws(() => sae.setState(bad), /Sae.setState: state.weights.b_dec has 3 values, expected 4/);
  assert.throws(() => sae.step(new Float32Array(11), 3, 0.1, 1e-3), /Sae.step: x has 11 values, expected at least 12/);
  assert.throws(() => sae.step(new Float32Array(12), 3, NaN, 1e-3), /Sae.step: lambda must be finite/);
  assert.throws(
    () => sae.evaluate(new Float32Array(12), 3, new Float32Array(7)),
    /Sae.evaluate: fired has 7 values, expected 8/,
  );
  assert.throws(() => sae.getArray('weights.W_foo'), /Sae.getArray: unknown array 'weights.W_foo'/);
  assert.deepEqual(sae.getState(), s, 'a rejected call changed the state');
  sae.dispose();
  assert.throws(() => sae.step(new Float32Array(12), 3, 0.1, 1e-3), /Sae.step: this Sae was disposed/);
  const info = emulated.info();
  assert.equal(info.emulated, true);
  assert.match(info.device, /emulated on the CPU .*not a GPU/);
});

test('emulated CUDA: profile() times every phase when asked, and nothing otherwise', { skip: skipEmulated }, () => {
  const cfg: SaeConfig = { dIn: 8, dSae: 24, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(3);
  const start = startState(cfg, rng);
  const timed = new emulated.Sae({ ...cfg, profile: true });
  const plain = new emulated.Sae(cfg);
  timed.setState(start);
  plain.setState(start);
  const x = batch(rng, 16, cfg.dIn);
  for (let k = 0; k < 2; k++) assert.deepEqual(timed.step(x, 16, 0.1, 1e-3), plain.step(x, 16, 0.1, 1e-3));
  const phases = timed.profile();
  for (const phase of [
    'batch to device',
    'encode (gemm)',
    'gate forward',
    'decode (gemm)',
    'dW_enc (gemm)',
    'adam decoder',
    'decoder renormalisation',
  ])
    assert.ok(phases[phase] >= 0, `phase '${phase}' missing from ${JSON.stringify(phases)}`);
  assert.deepEqual(plain.profile(), {});
  timed.dispose();
  plain.dispose();
});

test('the CUDA engine adapter on the emulation build: SaeEngine steps equal the native engine; auto never picks it', {
  skip: skipCpu,
}, async () => {
  const cfg: SaeConfig = { dIn: 12, dSae: 36, applyBDecToInput: true, bandwidth: 0.2 };
  const rng = mulberry32(17);
  const start = startState(cfg, rng);
  process.env.SAE_CUDA_ADDON = CUDA_EMULATED_ADDON;
  try {
    const engine = await createCudaEngine({ cfg, init: { weights: start.weights }, threads: 1, batchSize: 20 });
    const native = await createNativeEngine({ cfg, init: { weights: start.weights }, threads: 1 });
    assert.equal(engine.info.name, 'cuda');
    assert.match(engine.info.device, /emulated on the CPU/);
    for (let step = 0; step < 3; step++) {
      const x = batch(rng, 20, cfg.dIn);
      const got = await engine.trainStep(x, 20, 0.2, 2e-3);
      const want = await native.trainStep(x, 20, 0.2, 2e-3);
      assert.equal(got.l0, want.l0);
    }
    const snap = await engine.snapshot();
    assert.ok(stateDiff(snap, await native.snapshot()).worst < TOL);
    await engine.restore(start);
    assert.deepEqual(await engine.snapshot(), start);
    engine.dispose();
    native.dispose();
    assert.equal((await chooseEngine('cuda', undefined)).name, 'cuda');
    const auto = await chooseEngine('auto', undefined);
    assert.notEqual(auto.name, 'cuda');
    assert.match(auto.why, /skipped cuda: the loaded CUDA addon is the CPU emulation build/);
  } finally {
    delete process.env.SAE_CUDA_ADDON;
  }
});

test('the CUDA device build loads without a GPU and says why it cannot run; backend: cuda is then an error naming what is missing', {
  skip: skipDevice,
}, async () => {
  const device = require(CUDA_ADDON);
  const info = device.info();
  assert.equal(info.emulated, false);
  const status = await cudaStatus();
  if (info.error === null) {
    // A machine with a GPU: the device is named and the engine is available.
    assert.equal(typeof info.device, 'string');
    assert.equal(status.available, true);
    return;
  }
  assert.match(info.error, /^no CUDA device \(/);
  assert.throws(
    () => new device.Sae({ dIn: 4, dSae: 8, applyBDecToInput: true, bandwidth: 0.1 }),
    /new Sae: no CUDA device/,
  );
  assert.throws(() => device.sgemmBench(64, 64, 64, 1), /sgemmBench: no CUDA device/);
  assert.deepEqual(status, { available: false, reason: info.error });
  await assert.rejects(chooseEngine('cuda', undefined), (e: Error) => {
    assert.match(
      e.message,
      /backend 'cuda' cannot run here \(no CUDA device \(.*\)\); it needs an NVIDIA GPU with its driver/,
    );
    assert.match(e.message, /npm run build:cuda/);
    return true;
  });
  const auto = await chooseEngine('auto', undefined);
  assert.match(auto.why, /skipped cuda: no CUDA device/);
});

test('scripts/build-cuda.mjs never fails an install: without a compiler it says so in one line, exits 0, keeps the build', () => {
  const before = existsSync(CUDA_EMULATED_ADDON) ? statSync(CUDA_EMULATED_ADDON).mtimeMs : null;
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-cuda.mjs'), '--force', '--emulated'], {
    encoding: 'utf8',
    env: { ...process.env, CXX: join(root, 'no-such-compiler') },
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n'), [
    "sae-pipeline: CUDA kernels' emulation build not built (needs g++, OpenBLAS and Node headers); its tests skip",
  ]);
  assert.equal(
    existsSync(CUDA_EMULATED_ADDON) ? statSync(CUDA_EMULATED_ADDON).mtimeMs : null,
    before,
    'the existing build was touched',
  );
});
