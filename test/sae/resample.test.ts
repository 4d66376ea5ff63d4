/**
 * Dead-latent resampling: the mechanics on a hand-made state (only dead latents change; each
 * becomes a unit decoder row along a residual, fires on its input, and starts with fresh Adam
 * moments and counter), and its effect on the synthetic benchmark (fewer dead latents).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import trainSaeStage from '../../src/stages/train-sae.js';
import { initialWeights, PARAM_NAMES } from '../../src/sae/jumprelu.js';
import { resampleDead } from '../../src/sae/resample.js';
import type { EngineState } from '../../src/sae/engine.js';
import { mulberry32 } from '../../src/random.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { sparseData, tempDir, writeStore } from './fixtures.js';

test('resampleDead re-initialises only the dead latents, towards badly reconstructed inputs', () => {
  const dIn = 8,
    dSae = 12,
    rows = 32;
  const weights = initialWeights({ dIn, dSae }, 0.05, mulberry32(1));
  const zeros = () =>
    Object.fromEntries(
      PARAM_NAMES.map((n) => [n, Float32Array.from(weights[n], () => 0.5)]),
    ) as EngineState['adam']['m'];
  const state: EngineState = {
    weights,
    adam: { m: zeros(), v: zeros(), steps: [5, 5, 5] },
    sinceFired: new Float32Array(dSae).fill(10),
  };
  state.sinceFired[3] = 1000;
  state.sinceFired[7] = 1000;
  const before = structuredClone(state);
  const random = mulberry32(2);
  const x = Float32Array.from({ length: rows * dIn }, () => random() - 0.5);
  const r = resampleDead(state, { dIn, dSae, applyBDecToInput: true }, x, rows, 500, mulberry32(3));
  assert.equal(r.resampled, 2);
  for (let j = 0; j < dSae; j++) {
    const row = r.state.weights.W_dec.subarray(j * dIn, (j + 1) * dIn);
    if (j === 3 || j === 7) {
      assert.ok(Math.abs(Math.hypot(...row) - 1) < 1e-5, 'unit decoder row');
      assert.equal(r.state.sinceFired[j], 0);
      assert.equal(r.state.adam.m.log_threshold[j], 0);
      assert.ok(
        Math.abs(r.state.adam.v.W_dec[j * dIn] - 0.5) < 1e-6,
        "second moment: the tensor's typical value, not 0 (32x steps)",
      );
      assert.equal(r.state.weights.b_enc[j], 0);
    } else {
      assert.deepEqual(
        Array.from(row),
        Array.from(before.weights.W_dec.subarray(j * dIn, (j + 1) * dIn)),
        `live latent ${j} untouched`,
      );
      assert.equal(r.state.adam.m.log_threshold[j], 0.5);
    }
  }
  const none = resampleDead(r.state, { dIn, dSae, applyBDecToInput: true }, x, rows, 500, mulberry32(3));
  assert.equal(none.resampled, 0, 'nothing dead: nothing changes');
});

test('synthetic benchmark: resampling leaves fewer dead latents than the seed recipe', {
  timeout: 300_000,
}, async () => {
  const d = 16,
    nTrue = 32,
    rows = 8192 + 512;
  const root = tempDir('resample');
  const { x } = sparseData(rows, d, nTrue, 0.06, 1, 3);
  const store = writeStore(join(root, 'store'), x, d);
  const common = {
    store,
    eval_rows: 512,
    norm_scale: 3,
    d_sae: 64,
    batch_size: 64,
    steps: 1500,
    lr: 3e-3,
    lr_warmup_steps: 20,
    l0_coefficient: 0.1,
    l0_warmup_steps: 200,
    threshold_init: 0.3,
    bandwidth: 0.2,
    checkpoint_every: 0,
    backend: 'wasm',
    dead_window_samples: 3200,
  };
  const seed = (await runStageDirect(trainSaeStage, common)).outputs as any;
  const resampled = (
    await runStageDirect(trainSaeStage, { ...common, resample_dead_every: 100, resample_dead_until: 0.6 })
  ).outputs as any;
  console.log(
    `# dead latents held out: seed recipe ${seed.eval.dead_frac}, with resampling ` +
      `${resampled.eval.dead_frac} (${resampled.eval.resampled} resampled)`,
  );
  assert.equal(seed.eval.resampled, 0);
  assert.ok(resampled.eval.resampled > 0);
  assert.ok(resampled.eval.dead_frac < seed.eval.dead_frac);
});
