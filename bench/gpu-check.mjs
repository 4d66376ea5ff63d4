#!/usr/bin/env node
/**
 * The CUDA engine on a real device, in one go (run by bench/gpu-check.sh, which finds node, the
 * addon and cuBLAS first). Plain JavaScript with no dependencies, so that it runs from a
 * working-tree copy without node_modules or dist/:
 *   1. info: the device, the CUDA runtime and driver, the BLAS;
 *   2. parity on small shapes: N steps from the same weights and batches against a float64
 *      reference step (parity-reference.mjs: the math of src/sae/jumprelu.ts), and against the native
 *      CPU addon where it loads; a checkpoint/resume against an uninterrupted run; TF32 beside float32;
 *   3. samples/s at 512/4096/1024, 2048/16384/1024 and 2048/16384/4096 (d_in/d_sae/batch);
 *   4. milliseconds per phase of the step at the two large shapes (the device waited for after each);
 *   5. cuBLAS GFLOP/s (float32 and TF32) at a square and at the SAE's shapes.
 * Every section is timed and guarded: a failure is recorded in the JSON and the next runs. The
 * JSON is rewritten after each section, so a timeout still leaves what was measured.
 *
 *   node bench/gpu-check.mjs --out gpu-check.json [--seconds 3] [--shapes 512/4096/1024,...] [--gemms m/n/k,...]
 */
import { createRequire } from 'node:module';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
// The float64 reference step, start states and state comparison, shared with test/native.
import { batch, mulberry32, referenceStep, startState, stateDiff, toRef } from './parity-reference.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : dflt;
};
const outPath = arg('out', join(process.cwd(), 'gpu-check.json'));
const secondsPerShape = Number(arg('seconds', '3'));
/** d_in/d_sae/batch of the throughput runs. */
const shapes = arg('shapes', '512/4096/1024,2048/16384/1024,2048/16384/4096')
  .split(',')
  .map((s) => s.split('/').map(Number));
const addonPath = process.env.SAE_CUDA_ADDON || join(root, 'native', 'build', 'cuda', 'sae_cuda.node');

const result = { started: new Date().toISOString(), addon: addonPath, sections: {} };
const save = () => writeFileSync(outPath, `${JSON.stringify(result, null, 2)}\n`);

/** Runs one section: its result or its error, and its seconds, into the JSON. */
async function section(name, fn) {
  const t0 = performance.now();
  console.log(`-- ${name}`);
  try {
    result.sections[name] = { ok: true, ...(await fn()) };
  } catch (e) {
    result.sections[name] = { ok: false, error: String(e?.stack ?? e) };
    console.log(`   FAILED: ${e?.message ?? e}`);
  }
  result.sections[name].seconds = +((performance.now() - t0) / 1000).toFixed(2);
  console.log(`   ${JSON.stringify(result.sections[name]).slice(0, 600)}`);
  save();
}

/** The stated float32 tolerance on the weights, relative to each array's largest value (as test/native). */
const TOL = 5e-5;

// ---------------------------------------------------------------------------------------------

/** N steps on the device beside the float64 reference: per step rec, L0 and the worst state difference. */
function parityVsReference(addon, cfg, { rows, steps, allowTf32 = false, seed = 1 }) {
  const rng = mulberry32(seed);
  const start = startState(cfg, rng);
  const sae = new addon.Sae({ ...cfg, allowTf32 });
  sae.setState(start);
  const ref = toRef(start);
  const perStep = [];
  for (let s = 0; s < steps; s++) {
    const x = batch(rng, rows, cfg.dIn);
    const [rec, l0] = sae.step(x, rows, 0.3, 3e-3);
    const want = referenceStep(cfg, ref, x, rows, 0.3, 3e-3);
    const d = stateDiff(sae.getState(), ref);
    perStep.push({
      recRel: Math.abs(rec - want.rec) / want.rec,
      l0,
      l0Ref: want.l0,
      worstWeightsRel: d.worstWeights,
      worstRel: d.worst,
      where: d.where,
    });
  }
  sae.dispose();
  return summarise({ ...cfg, rows, steps, allowTf32 }, perStep, allowTf32 ? 1e-2 : TOL);
}

/** Worst differences over the steps; pass: the weights within `tol` and (float32) L0 equal at every step. */
function summarise(shape, perStep, tol) {
  const worstWeightsRel = Math.max(...perStep.map((p) => p.worstWeightsRel));
  const l0Equal = perStep.every((p) => p.l0 === p.l0Ref);
  return {
    shape,
    worstWeightsRel,
    worstRel: Math.max(...perStep.map((p) => p.worstRel)),
    l0Equal,
    pass: worstWeightsRel < tol && (shape.allowTf32 || l0Equal),
    perStep,
  };
}

function loadCpuAddon() {
  const p = join(root, 'native', 'index.cjs');
  if (!existsSync(p)) return { addon: null, error: 'native/index.cjs missing' };
  return require(p).loadNativeAddon();
}

/** A step's samples/s at one shape: a few warm-up steps, then as many as fit in `seconds` (at least 3). */
function samplesPerSecond(addon, dIn, dSae, rows, allowTf32) {
  const cfg = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 };
  const rng = mulberry32(7);
  const sae = new addon.Sae({ ...cfg, allowTf32 });
  try {
    sae.setState({ weights: startState(cfg, rng).weights });
    const xs = Array.from({ length: 2 }, () => batch(rng, rows, dIn));
    for (let k = 0; k < 2; k++) sae.step(xs[k % 2], rows, 1e-3, 1e-4);
    const t0 = performance.now();
    let steps = 0;
    let l0 = 0;
    while (steps < 3 || performance.now() - t0 < secondsPerShape * 1000)
      l0 = sae.step(xs[steps++ % 2], rows, 1e-3, 1e-4)[1];
    const s = (performance.now() - t0) / 1000;
    const samples = (steps * rows) / s;
    return {
      dIn,
      dSae,
      rows,
      allowTf32,
      steps,
      seconds: +s.toFixed(3),
      samplesPerS: Math.round(samples),
      stepsPerS: +(steps / s).toFixed(2),
      tflops: +((12 * dIn * dSae * samples) / 1e12).toFixed(2),
      l0: +l0.toFixed(1),
      deviceBytes: sae.bytes(),
    };
  } finally {
    sae.dispose();
  }
}

async function main() {
  if (!existsSync(addonPath)) throw new Error(`the CUDA addon is missing: ${addonPath} (build it: npm run build:cuda)`);
  const addon = require(addonPath);
  await section('info', () => {
    const info = addon.info();
    if (info.error) throw new Error(`the addon loads but cannot run: ${info.error}`);
    return { info, cudaVisibleDevices: process.env.CUDA_VISIBLE_DEVICES ?? null, node: process.version };
  });
  if (!result.sections.info.ok) return;
  await section('parity vs float64 reference', () => ({
    runs: [
      parityVsReference(
        addon,
        { dIn: 16, dSae: 48, applyBDecToInput: true, bandwidth: 0.2 },
        { rows: 32, steps: 5, seed: 1 },
      ),
      parityVsReference(
        addon,
        { dIn: 16, dSae: 48, applyBDecToInput: false, bandwidth: 0.2 },
        { rows: 32, steps: 5, seed: 2 },
      ),
      parityVsReference(
        addon,
        { dIn: 64, dSae: 256, applyBDecToInput: true, bandwidth: 0.1 },
        { rows: 128, steps: 4, seed: 3 },
      ),
      parityVsReference(
        addon,
        { dIn: 64, dSae: 256, applyBDecToInput: true, bandwidth: 0.1 },
        { rows: 128, steps: 4, seed: 3, allowTf32: true },
      ),
    ],
  }));
  await section('parity vs native CPU addon', () => {
    const { addon: cpu, error } = loadCpuAddon();
    if (!cpu) return { skipped: `native CPU addon not available: ${error}` };
    const cfg = { dIn: 256, dSae: 1024, applyBDecToInput: true, bandwidth: 0.05 };
    const rng = mulberry32(11);
    const start = startState(cfg, rng);
    const gpu = new addon.Sae(cfg);
    const ref = new cpu.Sae({ ...cfg, threads: 4, path: 'dense' });
    gpu.setState(start);
    ref.setState(start);
    const perStep = [];
    for (let s = 0; s < 10; s++) {
      const x = batch(rng, 512, cfg.dIn);
      const a = gpu.step(x, 512, 0.1, 1e-3),
        b = ref.step(x, 512, 0.1, 1e-3);
      const d = stateDiff(gpu.getState(), toRef(ref.getState()));
      perStep.push({
        recRel: Math.abs(a[0] - b[0]) / b[0],
        l0: a[1],
        l0Ref: b[1],
        worstWeightsRel: d.worstWeights,
        worstRel: d.worst,
        where: d.where,
      });
    }
    gpu.dispose();
    ref.dispose();
    return summarise({ ...cfg, rows: 512, steps: 10 }, perStep, TOL);
  });
  await section('checkpoint and resume', () => {
    const cfg = { dIn: 64, dSae: 256, applyBDecToInput: true, bandwidth: 0.1 };
    const rng = mulberry32(5);
    const start = startState(cfg, rng);
    const xs = Array.from({ length: 6 }, () => batch(rng, 128, cfg.dIn));
    const whole = new addon.Sae(cfg);
    whole.setState(start);
    xs.forEach((x) => whole.step(x, 128, 0.1, 1e-3));
    const first = new addon.Sae(cfg);
    first.setState(start);
    xs.slice(0, 3).forEach((x) => first.step(x, 128, 0.1, 1e-3));
    const state = first.getState();
    first.dispose();
    const resumed = new addon.Sae(cfg);
    resumed.setState(state);
    xs.slice(3).forEach((x) => resumed.step(x, 128, 0.1, 1e-3));
    const d = stateDiff(resumed.getState(), whole.getState());
    whole.dispose();
    resumed.dispose();
    return { worstRel: d.worst, where: d.where, exact: d.worst === 0, pass: d.worst < TOL };
  });
  await section('samples per second', () => {
    const runs = [];
    for (const [dIn, dSae, rows] of shapes)
      for (const tf32 of [false, true]) {
        const r = samplesPerSecond(addon, dIn, dSae, rows, tf32);
        console.log(
          `   ${dIn}/${dSae}/${rows}${tf32 ? ' tf32' : ''}: ${r.samplesPerS} samples/s (${r.stepsPerS} steps/s, ${r.tflops} TFLOP/s)`,
        );
        runs.push(r);
      }
    return { runs };
  });
  await section('phases (ms per step)', () => {
    const runs = [];
    // The large shapes (all but the first of the throughput runs).
    for (const [dIn, dSae, rows] of shapes.length > 1 ? shapes.slice(1) : shapes) {
      const cfg = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 };
      const rng = mulberry32(9);
      const sae = new addon.Sae({ ...cfg, profile: true });
      try {
        sae.setState({ weights: startState(cfg, rng).weights });
        const x = batch(rng, rows, dIn);
        const steps = 5;
        for (let k = 0; k < steps; k++) sae.step(x, rows, 1e-3, 1e-4);
        const ms = Object.fromEntries(
          Object.entries(sae.profile()).map(([phase, s]) => [phase, +((1000 * s) / steps).toFixed(3)]),
        );
        runs.push({
          dIn,
          dSae,
          rows,
          msPerStep: ms,
          totalMs: +Object.values(ms)
            .reduce((a, b) => a + b, 0)
            .toFixed(2),
        });
      } finally {
        sae.dispose();
      }
    }
    return { runs };
  });
  await section('cuBLAS GFLOP/s', () => {
    const gemms = arg('gemms', '4096/4096/4096,1024/16384/2048,16384/2048/1024,4096/16384/2048')
      .split(',')
      .map((s) => s.split('/').map(Number));
    return {
      blas: addon.info().blas,
      runs: gemms.flatMap(([m, n, k]) =>
        [false, true].map((tf32) => ({
          m,
          n,
          k,
          allowTf32: tf32,
          gflops: Math.round(addon.sgemmBench(m, n, k, 20, tf32)),
        })),
      ),
    };
  });
}

try {
  await main();
} catch (e) {
  result.error = String(e?.stack ?? e);
  console.log(`gpu-check: ${e?.message ?? e}`);
}
result.finished = new Date().toISOString();
/** Every parity verdict (a section's own `pass`, or each of its runs'). */
const verdicts = Object.entries(result.sections).flatMap(([name, s]) =>
  s.pass !== undefined
    ? [[name, s.pass]]
    : (s.runs ?? []).filter((r) => r.pass !== undefined).map((r, k) => [`${name} #${k + 1}`, r.pass]),
);
result.parityFailed = verdicts.filter(([, pass]) => !pass).map(([name]) => name);
save();
console.log(
  `gpu-check: parity ` +
    `${result.parityFailed.length ? `FAILED in ${result.parityFailed.join(', ')}` : `passed (${verdicts.length} checks)`}; ` +
    `results in ${outPath}`,
);
process.exit(result.error || result.parityFailed.length || Object.values(result.sections).some((s) => !s.ok) ? 1 : 0);
