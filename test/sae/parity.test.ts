/**
 * Engine parity: every engine present runs N steps from the same weights on the same batches
 * and must match the reference (tfjs cpu, in process) within float32 tolerances, in weights,
 * loss, L0 and dead-feature counters, also when the run is checkpointed to a file (streamed
 * from the engine array by array), the engine thrown away and a new one resumed from the file
 * half-way. Engines that cannot run
 * here (native not built, no GPU) are skipped with the reason.
 *
 * Tolerances (float32, weights of order 1, 24 steps of lr 3e-3): weights and Adam moments
 * within 2e-4 absolute (the engines differ only in summation order and fused multiply-adds);
 * per-step reconstruction loss within 1e-4 relative; L0 within one gate flip per batch;
 * samples-since-fired counters equal. The same engine with 1 vs 2 threads: within 2e-5.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chooseEngine } from '../../src/sae/backend.js';
import { CUDA_EMULATED_ADDON } from '../../src/sae/engines/cuda.js';
import type { EngineName, EngineState, SaeEngine } from '../../src/sae/engine.js';
import { initialWeights, PARAM_NAMES, type SaeConfig, type StepStats } from '../../src/sae/jumprelu.js';
import { loadCheckpoint, saveEngineCheckpoint } from '../../src/sae/checkpoint.js';
import { mulberry32 } from '../../src/random.js';
import { sparseData, tempDir } from './fixtures.js';

const dIn = 24,
  dSae = 96,
  B = 64,
  STEPS = 24,
  RESUME_AT = 10;
const cfg: SaeConfig = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.05 };
const { x: data } = sparseData(STEPS * B, dIn, 40, 0.1, 11);
const batch = (step: number) => data.slice(step * B * dIn, (step + 1) * B * dIn);
const lambdaAt = (step: number) => 0.02 * Math.min(1, (step + 1) / 8);
const LR = 3e-3;

interface Trace {
  stats: StepStats[];
  dead: number[];
  state: EngineState;
}

async function open(name: EngineName, threads: number, init: EngineState | null): Promise<SaeEngine> {
  const choice = await chooseEngine(name, threads);
  const start = init
    ? { weights: init.weights, adam: init.adam, sinceFired: init.sinceFired }
    : { weights: initialWeights({ dIn, dSae }, 0.6, mulberry32(4)) };
  return choice.create({ cfg, init: start, initDisposable: init !== null }); // a checkpoint's arrays are ours
}

/** Steps [from, to) on `engine`, recording each step's stats and the dead fraction after it. */
async function steps(engine: SaeEngine, from: number, to: number, trace: Omit<Trace, 'state'>): Promise<void> {
  for (let s = from; s < to; s++) {
    trace.stats.push(await engine.trainStep(batch(s), B, lambdaAt(s), LR));
    trace.dead.push(await engine.deadFraction(B)); // did not fire in the last batch
  }
}

/** A straight run, or one checkpointed to a file at RESUME_AT and resumed by a fresh engine. */
async function run(name: EngineName, threads: number, resume: boolean): Promise<Trace> {
  const trace = { stats: [] as StepStats[], dead: [] as number[] };
  let engine = await open(name, threads, null);
  try {
    if (resume) {
      await steps(engine, 0, RESUME_AT, trace);
      const dir = tempDir('parity');
      const fingerprint = { name, threads };
      await saveEngineCheckpoint(dir, cfg, engine, { step: RESUME_AT, loader: null, rng: 0, fingerprint }, 'none');
      await engine.dispose();
      const ckpt = loadCheckpoint(dir, fingerprint)!;
      engine = await open(name, threads, { weights: ckpt.weights, adam: ckpt.adam, sinceFired: ckpt.sinceFired });
    }
    await steps(engine, resume ? RESUME_AT : 0, STEPS, trace);
    return { ...trace, state: await engine.snapshot() };
  } finally {
    await engine.dispose();
  }
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function assertClose(got: Trace, ref: Trace, what: string, weightTol: number): void {
  for (const n of PARAM_NAMES) {
    const d = maxAbsDiff(got.state.weights[n], ref.state.weights[n]);
    assert.ok(d <= weightTol, `${what}: ${n} differs by ${d} (tolerance ${weightTol})`);
    const dm = maxAbsDiff(got.state.adam.m[n], ref.state.adam.m[n]);
    const dv = maxAbsDiff(got.state.adam.v[n], ref.state.adam.v[n]);
    assert.ok(dm <= weightTol && dv <= weightTol, `${what}: Adam moments of ${n} differ by ${dm} / ${dv}`);
  }
  assert.deepEqual(got.state.adam.steps, ref.state.adam.steps, `${what}: Adam step counts`);
  got.stats.forEach((s, i) => {
    const r = ref.stats[i];
    assert.ok(Math.abs(s.rec - r.rec) <= 1e-4 * r.rec, `${what}: step ${i} loss ${s.rec} vs ${r.rec}`);
    assert.ok(Math.abs(s.l0 - r.l0) <= 1 / B + 1e-9, `${what}: step ${i} L0 ${s.l0} vs ${r.l0}`);
    assert.ok(Math.abs(s.totalVar - r.totalVar) <= 1e-4 * r.totalVar, `${what}: step ${i} variance`);
  });
  assert.deepEqual(Array.from(got.state.sinceFired), Array.from(ref.state.sinceFired), `${what}: samples since fired`);
  const deadCounts = (t: Trace) => t.dead.map((f) => Math.round(f * dSae)); // float32 mean vs float64 count / d_sae
  assert.deepEqual(deadCounts(got), deadCounts(ref), `${what}: dead features after each step`);
}

const reference = run('cpu', 1, false);

test('the reference learns something (the comparison is not of a frozen model)', async () => {
  const ref = await reference;
  assert.ok(ref.stats.at(-1)!.rec < 0.8 * ref.stats[0].rec, `loss ${ref.stats[0].rec} -> ${ref.stats.at(-1)!.rec}`);
  assert.ok(
    ref.stats.some((s) => s.l0 > 0) && ref.dead.some((d) => d > 0),
    `features fire (${ref.stats.map((s) => s.l0.toFixed(1))}) and some go dead (${ref.dead})`,
  );
});

const CASES: Array<[EngineName, number]> = [
  ['cpu', 2],
  ['wasm', 1],
  ['wasm', 2],
  ['native', 1],
  ['native', 2],
  ['cuda', 1],
];
for (const [name, threads] of CASES) {
  test(`${name} with ${threads} thread(s) equals the reference, straight and resumed from a checkpoint file`, async (t) => {
    try {
      await chooseEngine(name, threads);
    } catch (e) {
      t.skip(`${name} is not available here: ${(e as Error).message}`);
      return;
    }
    const ref = await reference;
    assertClose(await run(name, threads, false), ref, `${name}/${threads}`, 2e-4);
    assertClose(await run(name, threads, true), ref, `${name}/${threads} resumed`, 2e-4);
  });
}

// The CUDA kernels compiled as host C++ (native/cuda/device.h): the same loop, checkpoint file and
// resume as the real engine, checking the kernels' arithmetic here; the device itself is checked
// only by bench/gpu-check.sh on a GPU machine.
test('cuda kernels emulated on the CPU equal the reference, straight and resumed from a checkpoint file', async (t) => {
  if (!existsSync(CUDA_EMULATED_ADDON)) {
    t.skip(`the CUDA emulation build is missing (${CUDA_EMULATED_ADDON}; npm run build:cuda)`);
    return;
  }
  process.env.SAE_CUDA_ADDON = CUDA_EMULATED_ADDON;
  try {
    const ref = await reference;
    assertClose(await run('cuda', 1, false), ref, 'cuda (emulated)', 2e-4);
    assertClose(await run('cuda', 1, true), ref, 'cuda (emulated) resumed', 2e-4);
  } finally {
    delete process.env.SAE_CUDA_ADDON;
  }
});

test('native: 1 and 2 threads agree within rounding', async (t) => {
  try {
    await chooseEngine('native', 1);
  } catch (e) {
    t.skip(`native is not available here: ${(e as Error).message}`);
    return;
  }
  assertClose(await run('native', 2, false), await run('native', 1, false), 'native 2 vs 1 threads', 2e-5);
});
