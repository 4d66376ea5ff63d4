/**
 * Bad input stops train-sae with a clear error: non-finite activations and a diverging loss
 * (naming the step and the value, keeping the last good checkpoint); shape, memory and
 * init_from mismatches and conflicting params before training starts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/sae/safetensors.js';
import { CHECKPOINT_FILE } from '../../src/sae/checkpoint.js';
import { resolveSteps } from '../../src/stages/train-sae-run.js';
import { sparseData, tempDir, writeStore } from './fixtures.js';
import { runTrainSae } from './stage-ctx.js';
import { cli, makeProject } from '../runtime/helpers.js';

const d = 8;
const root = tempDir('bad');
const clean = sparseData(512 + 64, d, 10, 0.2, 4).x;
const store = writeStore(join(root, 'store'), clean, d);
const base = {
  store,
  eval_rows: 64,
  d_sae: 16,
  batch_size: 32,
  steps: 10,
  backend: 'cpu',
  shuffle: false,
  checkpoint_every: 2,
  log_every: 1,
};
let n = 0;
const dirs = () => ({ outDir: join(root, `r${++n}/out`), workDir: join(root, `r${n}/work`) });
const checkpointStep = (work: string) => JSON.parse(readSafetensors(join(work, CHECKPOINT_FILE)).metadata.state).step;

test('NaN in a batch: error names the step and the value; the last checkpoint is kept', async () => {
  const x = clean.slice();
  x[100 * d + 3] = NaN; // row 100 -> batch 3 (32 rows a batch, in order)
  const bad = writeStore(join(root, 'nan-store'), x, d);
  const dd = dirs();
  await assert.rejects(
    runTrainSae({ ...base, store: bad }, dd),
    /training batch at step 3 contains NaN \(row 4 of the batch, column 3\)/,
  );
  assert.equal(checkpointStep(dd.workDir), 2);
  const inf = clean.slice();
  inf[7] = -Infinity;
  await assert.rejects(
    runTrainSae({ ...base, store: writeStore(join(root, 'inf-store'), inf, d) }, dirs()),
    /step 0 contains -Infinity/,
  );
});

test('diverging loss: error names the step and the loss; the last good checkpoint is kept', async () => {
  const dd = dirs();
  await assert.rejects(runTrainSae({ ...base, lr: 50, lr_warmup_steps: 0, max_loss: 100 }, dd), (e: Error) => {
    assert.match(e.message, /loss diverged at step (\d+): loss=(\S+) .*last good checkpoint: (none|step \d+)/);
    const [, step, loss] = e.message.match(/step (\d+): loss=([^ ]+)/)!;
    assert.ok(Number(step) >= 1, `diverged at step ${step}`);
    assert.ok(!(Number(loss) <= 100), `loss ${loss}`);
    if (existsSync(join(dd.workDir, CHECKPOINT_FILE))) assert.ok(checkpointStep(dd.workDir) <= Number(step));
    return true;
  });
});

test('on_divergence: record makes a diverged run a result with null metrics (a sweep survives it)', async () => {
  const dd = dirs();
  const { outputs: out } = await runTrainSae(
    { ...base, lr: 50, lr_warmup_steps: 0, max_loss: 100, on_divergence: 'record' },
    dd,
  );
  assert.equal(out.loss, null);
  assert.equal(out.fvu, null);
  const ev = out.eval as Record<string, unknown>;
  assert.ok(Number(ev.diverged_at_step) >= 1, JSON.stringify(ev));
  const lines = readFileSync(join(dd.outDir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.equal(lines[0].type, 'config');
  assert.deepEqual(lines.at(-1), { type: 'eval', ...ev });
  assert.ok(existsSync(join(dd.outDir, 'sae', 'diverged.json')));
});

test('shape, memory and parameter errors come before training', async () => {
  const checkNothingTrained = (work: string) =>
    assert.ok(!existsSync(work) || !readdirSync(work).includes(CHECKPOINT_FILE), 'no checkpoint written');
  let dd = dirs();
  await assert.rejects(runTrainSae({ ...base, d_in: 9 }, dd), /d_in=9 but the store .* has d=8/);
  dd = dirs();
  await assert.rejects(
    runTrainSae({ ...base, d_sae: 5_000_000, max_memory_gb: 1 }, dd),
    /d_sae=5000000, d_in=8, batch_size=32 on cpu needs about .* GiB.* limit of 1\.00 GiB \(max_memory_gb\)/,
  );
  checkNothingTrained(dd.workDir);
  await assert.rejects(
    runTrainSae({ ...base, steps: 3, n_samples: 100 }, dirs()),
    /give steps \(3\) or n_samples \(100\), not both/,
  );
  assert.equal(resolveSteps({ n_samples: 100.5, batch_size: 32 }), 4);

  const ok = dirs();
  await runTrainSae({ ...base, steps: 2 }, ok);
  dd = dirs();
  await assert.rejects(
    runTrainSae({ ...base, d_sae: 32, init_from: join(ok.outDir, 'sae') }, dd),
    /init_from .* has d_in=8, d_sae=16; this run has d_in=8, d_sae=32/,
  );
  checkNothingTrained(dd.workDir);
  await assert.rejects(runTrainSae({ ...base, init_from: join(root, 'nowhere') }, dirs()), /missing .*cfg\.json/);
  await assert.rejects(runTrainSae({ ...base, store: join(root, 'nowhere') }, dirs()), /nowhere/);
});

test('target_l0 with resampling is refused: at load time, naming the stage and its position, and at run time', async () => {
  const p = makeProject('conflict-');
  p.write(
    'pipelines/p.yaml',
    `params: { target: 4 }
stages:
  train:
    uses: train-sae
    with:
      store: nowhere
      target_l0: \${{ params.target }}
      resample_dead_every: 100
`,
  );
  const r = await cli(['run', 'p'], p.dir);
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stderr}`);
  assert.match(
    r.stderr,
    /p\.yaml:6:7: stage train: target_l0 \(4\) and resample_dead_every \(100\) do not work together/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  await assert.rejects(
    runTrainSae({ ...base, target_l0: 4, resample_dead_every: 5 }, dirs()),
    /train-sae: target_l0 \(4\) and resample_dead_every \(5\) do not work together.*set resample_dead_every: 0/,
  );
});
