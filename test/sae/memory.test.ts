/**
 * Memory a native training holds besides the engine: the start state given to the engine is
 * freed at once when the caller says it is disposable (a checkpoint's or the seed init's arrays,
 * a model's worth of memory), never when it is the caller's (init_from), and freeing it changes
 * nothing in the training; a checkpoint streamed in chunks holds exactly the engine's state; after
 * endTraining the engine keeps only what evaluation and export need. bench/memory-native.ts
 * measures the process's peak at full size.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chooseEngine } from '../../src/sae/backend.js';
import { nativeStatus } from '../../src/sae/engines/native.js';
import { initialWeights, PARAM_NAMES, type SaeConfig } from '../../src/sae/jumprelu.js';
import { mulberry32 } from '../../src/random.js';
import { loadCheckpoint, saveEngineCheckpoint } from '../../src/sae/checkpoint.js';
import { sparseData, tempDir } from './fixtures.js';

// W_enc and W_dec of 64 x 4096 floats are 1 MiB each: large enough to be freed (free-now.ts).
const cfg: SaeConfig = { dIn: 64, dSae: 4096, applyBDecToInput: false, bandwidth: 0.05 };
const B = 32;

async function train(initDisposable: boolean) {
  const weights = initialWeights(cfg, 0.3, mulberry32(7));
  const engine = await (await chooseEngine('native', 1)).create({ cfg, init: { weights }, initDisposable });
  const { x } = sparseData(4 * B, cfg.dIn, 40, 0.1, 3);
  for (let s = 0; s < 4; s++) await engine.trainStep(x.subarray(s * B * cfg.dIn), B, 1e-3, 1e-3);
  const state = await engine.snapshot();
  await engine.dispose();
  return { weights, state };
}

test("native: a disposable start state is freed at once, the caller's is kept, the training is the same", {
  skip: (await nativeStatus()).available ? false : 'native addon not built',
}, async () => {
  const kept = await train(false);
  const freed = await train(true);
  assert.equal(kept.weights.W_enc.length, cfg.dIn * cfg.dSae, 'not disposable: the caller still has its arrays');
  assert.equal(freed.weights.W_enc.length, 0, 'disposable: W_enc freed (detached) once the engine had its copy');
  assert.equal(freed.weights.W_dec.length, 0);
  assert.equal(freed.weights.b_dec.length, cfg.dIn, 'small arrays are left to the collector');
  for (const n of PARAM_NAMES) assert.deepEqual(freed.state.weights[n], kept.state.weights[n], `${n} after 4 steps`);
});

test('native: a checkpoint streamed in chunks holds exactly the engine state (W_enc over several chunks)', {
  skip: (await nativeStatus()).available ? false : 'native addon not built',
}, async () => {
  // W_enc of 256 x 20000 floats is 5.1M values: two 16 MiB chunks of whole rows and a remainder.
  const big: SaeConfig = { dIn: 256, dSae: 20000, applyBDecToInput: true, bandwidth: 0.05 };
  const engine = await (await chooseEngine('native', 1)).create({
    cfg: big,
    init: { weights: initialWeights(big, 0.3, mulberry32(9)) },
  });
  const { x } = sparseData(8, big.dIn, 40, 0.1, 5);
  await engine.trainStep(x, 8, 1e-3, 1e-3);
  const dir = tempDir('memory-ckpt');
  await saveEngineCheckpoint(dir, big, engine, { step: 1, loader: null, rng: 0, fingerprint: {} }, 'none');
  const want = await engine.snapshot();
  const got = loadCheckpoint(dir, {})!;
  for (const n of PARAM_NAMES) {
    assert.deepEqual(got.weights[n], want.weights[n], `weights ${n}`);
    assert.deepEqual(got.adam.m[n], want.adam.m[n], `adam m ${n}`);
    assert.deepEqual(got.adam.v[n], want.adam.v[n], `adam v ${n}`);
  }
  assert.deepEqual(got.adam.steps, want.adam.steps);
  assert.deepEqual(got.sinceFired, want.sinceFired);

  // After endTraining only the weights and the forward pass remain; the moments and steps refuse.
  await engine.endTraining?.();
  assert.deepEqual(await engine.readState!().array('weights.W_dec'), want.weights.W_dec);
  const stats = await engine.evaluate(x, 8);
  assert.ok(Number.isFinite(stats.sqErr));
  assert.throws(() => engine.trainStep(x, 8, 1e-3, 1e-3), /training was ended \(endTraining\)/);
  assert.throws(() => engine.snapshot(), /training was ended/);
  await engine.dispose();
});
