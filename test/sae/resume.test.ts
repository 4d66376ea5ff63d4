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
    store,
    eval_rows: 64,
    d_sae: 16,
    batch_size: 32,
    steps: 40,
    lr: 1e-2,
    lr_warmup_steps: 5,
    l0_coefficient: 1e-2,
    threshold_init: 0.05,
    bandwidth: 0.05,
    log_every: 4,
    checkpoint_every: 8,
    backend: 'cpu',
    seed: 3,
  };
  const straight = await runTrainSae(params, { outDir: join(root, 'a/out'), workDir: join(root, 'a/work') });
  assert.ok(!existsSync(join(root, 'a/work', `${CHECKPOINT_FILE}.tmp`)));

  // Run B: copy the periodic checkpoint (step 16) when step 20 is logged, then abort.
  const workB = join(root, 'b/work');
  const saved = join(root, 'saved');
  mkdirSync(saved);
  const ac = new AbortController();
  await assert.rejects(
    runTrainSae(
      params,
      { outDir: join(root, 'b/out1'), workDir: workB },
      {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.message?.startsWith('step 20/')) {
            copyFileSync(join(workB, CHECKPOINT_FILE), join(saved, CHECKPOINT_FILE));
            copyFileSync(join(workB, 'metrics.jsonl'), join(saved, 'metrics.jsonl'));
            ac.abort();
          }
        },
      },
    ),
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
    const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l))
      .filter((l) => l.type === 'train')
      .map((l) => l.step);
    assert.deepEqual(
      steps,
      Array.from({ length: 10 }, (_, i) => 4 * (i + 1)),
      `${out} metrics steps`,
    );
  }
  assert.deepEqual(resumed.outputs.eval, straight.outputs.eval);
});

test('workers: 2 (features split over threads) matches one thread, and resumes exactly', async () => {
  const root = tempDir('parallel');
  const d = 8;
  const store = writeStore(join(root, 'store'), sparseData(512 + 64, d, 12, 0.15, 6).x, d);
  const params = {
    store,
    eval_rows: 64,
    d_sae: 16,
    batch_size: 32,
    steps: 16,
    lr: 1e-2,
    lr_warmup_steps: 2,
    l0_coefficient: 1e-2,
    threshold_init: 0.05,
    bandwidth: 0.05,
    log_every: 4,
    checkpoint_every: 4,
    backend: 'cpu',
    seed: 1,
  };
  const one = await runTrainSae(params, { outDir: join(root, 'one/out'), workDir: join(root, 'one/work') });
  // `workers` is the old name of `threads`: both are accepted.
  const two = await runTrainSae(
    { ...params, workers: 2 },
    { outDir: join(root, 'two/out'), workDir: join(root, 'two/work') },
  );
  assert.ok(
    two.logs.some((m) =>
      m.startsWith('backend: cpu on CPU (tfjs plain JS; features split over worker threads), 2 threads'),
    ),
    two.logs.join('\n'),
  );
  const ac = new AbortController();
  const work = join(root, 'b/work');
  await assert.rejects(
    runTrainSae(
      { ...params, threads: 2 },
      { outDir: join(root, 'b/out1'), workDir: work },
      {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.message?.startsWith('step 8/')) ac.abort();
        },
      },
    ),
    /aborted at step 8/,
  );
  await runTrainSae({ ...params, threads: 2 }, { outDir: join(root, 'b/out2'), workDir: work });
  const weights = (out: string) => readSafetensors(join(out, 'sae', 'sae_weights.safetensors')).tensors;
  const w1 = weights(join(root, 'one/out')),
    w2 = weights(join(root, 'two/out')),
    w2r = weights(join(root, 'b/out2'));
  for (const name of Object.keys(w1)) {
    let d12 = 0,
      d2r = 0;
    w1[name].data.forEach((v, i) => {
      d12 = Math.max(d12, Math.abs(v - w2[name].data[i]));
      d2r = Math.max(d2r, Math.abs(w2[name].data[i] - w2r[name].data[i]));
    });
    assert.ok(d12 <= 1e-4, `${name}: one thread vs two workers differ by ${d12}`);
    assert.ok(d2r <= 1e-6, `${name}: resumed two-worker run differs by ${d2r}`);
  }
  assert.ok(Math.abs((one.outputs.loss as number) - (two.outputs.loss as number)) < 1e-4);
});

test('a resumed run with dead-latent resampling ends with the weights of an uninterrupted one', async () => {
  const root = tempDir('resume-resample');
  const d = 8;
  const store = writeStore(join(root, 'store'), sparseData(1024 + 64, d, 12, 0.15, 7).x, d);
  // A high initial threshold and lambda kill latents early, so resampling happens both before
  // and after the step-20 abort: the resumed run must continue the resampler's random stream
  // and its batch cursor, not restart them.
  const params = {
    store,
    eval_rows: 64,
    d_sae: 24,
    batch_size: 32,
    steps: 40,
    lr: 1e-2,
    lr_warmup_steps: 5,
    l0_coefficient: 5e-2,
    threshold_init: 1.5,
    bandwidth: 0.05,
    log_every: 4,
    checkpoint_every: 8,
    backend: 'cpu',
    seed: 4,
    resample_dead_every: 4,
    resample_dead_until: 1,
    dead_window_samples: 64,
  };
  const straight = await runTrainSae(params, { outDir: join(root, 'a/out'), workDir: join(root, 'a/work') });
  const resampleSteps = (logs: string[]) =>
    logs.flatMap((m) => /^step (\d+): resampled/.exec(m)?.[1] ?? []).map(Number);
  const steps = resampleSteps(straight.logs);
  assert.ok(steps.some((s) => s <= 20) && steps.some((s) => s > 20), `resampling on both sides of step 20: ${steps}`);

  const ac = new AbortController();
  const work = join(root, 'b/work');
  await assert.rejects(
    runTrainSae(
      params,
      { outDir: join(root, 'b/out1'), workDir: work },
      {
        signal: ac.signal,
        onProgress: (p) => {
          if (p.message?.startsWith('step 20/')) ac.abort();
        },
      },
    ),
    /aborted at step 20\/40/,
  );
  const resumed = await runTrainSae(params, { outDir: join(root, 'b/out2'), workDir: work });
  const weights = (out: string) => readSafetensors(join(out, 'sae', 'sae_weights.safetensors')).tensors;
  const ref = weights(join(root, 'a/out')),
    got = weights(join(root, 'b/out2'));
  for (const name of Object.keys(ref)) {
    let maxDiff = 0;
    ref[name].data.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - got[name].data[i]))));
    assert.ok(maxDiff <= 1e-6, `${name}: resumed run differs by ${maxDiff}`);
  }
  assert.deepEqual(resumed.outputs.eval, straight.outputs.eval);
});
