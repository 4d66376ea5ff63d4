/**
 * The train-sae stage end to end on a small synthetic store with a known dictionary (wasm
 * backend): outputs, metrics.jsonl layout, progress, learning, ground-truth recovery.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import trainSaeStage from '../../src/stages/train-sae.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { sparseData, tempDir, writeDictionary, writeStore } from './fixtures.js';

// A tiny problem needs a larger lr, lambda, threshold and STE bandwidth than the seed's defaults.
const STEPS = 2000,
  LR = 3e-3,
  L0C = 0.1,
  THR = 0.3,
  BW = 0.2;

test('train-sae learns a synthetic dictionary and writes every output', async () => {
  const d = 16,
    nTrue = 24,
    rows = 4096 + 512;
  const root = tempDir('train');
  const { x, features } = sparseData(rows, d, nTrue, 0.08, 1, 3);
  const store = writeStore(join(root, 'store'), x, d);
  const dict = writeDictionary(join(root, 'dictionary.safetensors'), features, nTrue, d);
  const t0 = performance.now();
  const run = await runStageDirect(trainSaeStage, {
    store,
    ground_truth: dict,
    eval_rows: 512,
    norm_scale: 3,
    d_sae: 48,
    batch_size: 64,
    steps: STEPS,
    lr: LR,
    lr_warmup_steps: 20,
    l0_coefficient: L0C,
    l0_warmup_steps: 300,
    threshold_init: THR,
    bandwidth: BW,
    log_every: 50,
    checkpoint_every: 200,
    backend: 'wasm',
    model_name: 'test-model',
    hook_name: 'blocks.0.hook_test',
    context_size: 128,
  });
  const seconds = (performance.now() - t0) / 1000;
  const o = run.outputs as any;
  assert.equal(o.sae, 'sae');
  assert.equal(o.metrics, 'metrics.jsonl');
  assert.equal(o.d_sae, 48);
  assert.equal(o.n_samples, STEPS * 64);
  assert.equal(o.lr, LR);
  assert.deepEqual(o.backend.name, 'wasm');
  for (const f of ['cfg.json', 'sae_weights.safetensors', 'metrics.json'])
    assert.ok(existsSync(join(run.outDir, 'sae', f)), f);

  const lines = readFileSync(join(run.outDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines[0].type, 'config');
  assert.equal(lines[0].d_in, d);
  assert.equal(lines[0].backend, 'wasm');
  const train = lines.filter((l) => l.type === 'train');
  // The eval line, then the run record (data and sparsity: passes, unique vectors, target L0).
  const [ev, runRec] = lines.slice(-2);
  assert.equal(ev.type, 'eval');
  assert.equal(runRec.type, 'run');
  assert.equal(runRec.passes, (STEPS * 64) / 4096);
  assert.equal(runRec.unique_samples, 4096);
  console.log(
    `# ${seconds.toFixed(1)} s; first mse ${train[0].mse.toFixed(4)} fvu ${train[0].fvu.toFixed(3)}; eval mse ${ev.mse.toFixed(4)} ` +
      `fvu ${ev.fvu.toFixed(3)} l0 ${ev.l0.toFixed(2)} dead ${ev.dead_frac} recovery ${ev.recovery_mean_max_cos.toFixed(3)} ` +
      `>0.9 ${ev.recovery_frac_above_0_9.toFixed(2)}`,
  );
  for (const key of ['loss', 'mse', 'l0', 'fvu', 'dead_frac', 'lr', 'lambda', 'samples']) {
    assert.ok(
      train.every((l) => Number.isFinite(l[key])),
      `train.${key}`,
    );
  }
  // No timing in the metrics: a re-run with the same weights writes the same file (downstream caches hold).
  assert.ok(
    train.every((l) => !('samples_per_s' in l)),
    'train lines carry no throughput',
  );
  assert.deepEqual(o.backend, { name: 'wasm', device: 'CPU (tfjs wasm)', threads: 1 });
  assert.equal(lines[0].threads, 1);
  assert.deepEqual(o.eval, Object.fromEntries(Object.entries({ ...ev, ...runRec }).filter(([k]) => k !== 'type')));
  assert.equal(o.loss, ev.total_loss, 'loss = held-out mse + lambda * l0');
  assert.ok(Math.abs(ev.total_loss - (ev.mse + L0C * ev.l0)) < 1e-9);
  assert.equal(o.mse, ev.mse);
  assert.equal(o.fvu, ev.fvu);
  assert.equal(o.l0, ev.l0);
  assert.deepEqual(
    train.map((l) => l.step),
    Array.from({ length: STEPS / 50 }, (_, i) => 50 * (i + 1)),
  );
  // It learned: the reconstruction improved a lot, sparsely, and found the true features.
  assert.ok(ev.fvu < 0.5 * train[0].fvu, `fvu ${ev.fvu} vs first window ${train[0].fvu}`);
  assert.ok(ev.l0 < 48 / 2, `l0 ${ev.l0}`);
  assert.ok(ev.recovery_mean_max_cos > 0.8, `recovery ${ev.recovery_mean_max_cos}`);
  // Progress reached the runtime with a rate, an ETA and the loss.
  const last = run.progress[run.progress.length - 1];
  assert.equal(last.fraction, 1);
  assert.equal(last.unit, 'samples');
  assert.ok((last.rate ?? 0) > 0 && last.etaSeconds === 0);
  assert.match(last.message ?? '', new RegExp(`step ${STEPS}/${STEPS} .*steps/s loss .* L0 `));
  assert.ok(
    run.logs.some((m) => m.startsWith('backend: wasm on CPU (tfjs wasm), 1 thread')),
    run.logs.join('\n'),
  );
  const cfg = JSON.parse(readFileSync(join(run.outDir, 'sae', 'cfg.json'), 'utf8'));
  assert.equal(cfg.architecture, 'jumprelu');
  assert.equal(cfg.metadata.model_name, 'test-model');
  assert.equal(cfg.metadata.context_size, 128);
  assert.equal(cfg.metadata.sae_lens_version, '6.0.0');
});
