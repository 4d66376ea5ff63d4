/**
 * Checkpoints and resume (cpu backend, tiny shapes): a run aborted mid-way, and a run that
 * "crashed" after its last periodic checkpoint, both resume and end with the same weights
 * as an uninterrupted run, and with one metrics line per logged step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/sae/safetensors.js';
import { CHECKPOINT_FILE } from '../../src/sae/checkpoint.js';
import { sparseData, tempDir, writeStore } from './fixtures.js';
import { runTrainSae } from './stage-ctx.js';

test('interrupted + resumed runs end with the weights of an uninterrupted run', async () => {
  const root = tempDir('resume');
  const d = 8;
  const store = writeStore(join(root, 'store'), sparseData(1024 + 64, d, 12, 0.15, 5).x, d);
  const params = {
    store, eval_rows: 64, d_sae: 16, batch_size: 32, steps: 40, lr: 1e-2, lr_warmup_steps: 5,
    l0_coefficient: 1e-2, threshold_init: 0.05, bandwidth: 0.05, log_every: 4, checkpoint_every: 8, backend: 'cpu', seed: 3,
  };
  const straight = await runTrainSae(params, { outDir: join(root, 'a/out'), workDir: join(root, 'a/work') });
  assert.ok(!existsSync(join(root, 'a/work', `${CHECKPOINT_FILE}.tmp`)));

  // Run B: copy the periodic checkpoint (step 16) when step 20 is logged, then abort.
  const workB = join(root, 'b/work');
  const saved = join(root, 'saved');
  mkdirSync(saved);
  const ac = new AbortController();
  await assert.rejects(
    runTrainSae(params, { outDir: join(root, 'b/out1'), workDir: workB }, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.message?.startsWith('step 20/')) {
          copyFileSync(join(workB, CHECKPOINT_FILE), join(saved, CHECKPOINT_FILE));
          copyFileSync(join(workB, 'metrics.jsonl'), join(saved, 'metrics.jsonl'));
          ac.abort();
        }
      },
    }),
    /aborted at step 20\/40; checkpoint saved/,
  );
  const stateAt = (dir: string) => JSON.parse(readSafetensors(join(dir, CHECKPOINT_FILE)).metadata.state).step;
  assert.equal(stateAt(saved), 16);
  assert.equal(stateAt(workB), 20);

  // B1: resume from the abort checkpoint (step 20).
  const resumed = await runTrainSae(params, { outDir: join(root, 'b/out2'), workDir: workB });
  assert.ok(resumed.logs.some((m) => m.includes('resuming from checkpoint at step 20/40')));
  // B2: a "kill" between checkpoints: only the step-16 checkpoint survives.
  const workC = join(root, 'c/work');
  mkdirSync(workC, { recursive: true });
  copyFileSync(join(saved, CHECKPOINT_FILE), join(workC, CHECKPOINT_FILE));
  copyFileSync(join(saved, 'metrics.jsonl'), join(workC, 'metrics.jsonl'));
  const crashed = await runTrainSae(params, { outDir: join(root, 'c/out'), workDir: workC });
  assert.ok(crashed.logs.some((m) => m.includes('resuming from checkpoint at step 16/40')));

  const weights = (out: string) => readSafetensors(join(out, 'sae', 'sae_weights.safetensors')).tensors;
  const ref = weights(join(root, 'a/out'));
  for (const out of [join(root, 'b/out2'), join(root, 'c/out')]) {
    const w = weights(out);
    for (const name of Object.keys(ref)) {
      let maxDiff = 0;
      ref[name].data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - w[name].data[i]))));
      assert.ok(maxDiff <= 1e-6, `${out} ${name}: max diff ${maxDiff}`);
    }
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
      .filter((l) => l.type === 'train').map((l) => l.step);
    assert.deepEqual(steps, Array.from({ length: 10 }, (_, i) => 4 * (i + 1)), `${out} metrics steps`);
  }
  assert.deepEqual(resumed.outputs.eval, straight.outputs.eval);
});
