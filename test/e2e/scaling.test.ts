/**
 * The Llama study's own pipeline, pipelines/scaling.yaml, end to end at toy sizes: the
 * dataset comes from a fake hub on 127.0.0.1 (HF_ENDPOINT) serving parquet files in the
 * real dataset's layout, and every stage after it is the real one. A small child file
 * (`extends: scaling.yaml`) only shrinks the final run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeHubLayoutParquet } from '../../src/data/parquet/write-hub-layout.js';
import { makeProject, cli } from '../runtime/helpers.js';
import { startFakeHub, newCommitSha, type FakeHub } from '../hub/fake-hub.js';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const D = 32;
const ROWS_PER_FILE = 6000;

/** Sparse rows: each a non-negative mix of 3 of 64 fixed random directions (seeded). */
function activations(rows: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const rand = () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const dict = Float32Array.from({ length: 64 * D }, () => rand() - 0.5);
  const x = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < 3; k++) {
      const f = Math.floor(rand() * 64);
      const c = 0.5 + rand();
      for (let i = 0; i < D; i++) x[r * D + i] += c * dict[f * D + i];
    }
  }
  return x;
}

let hub: FakeHub;
const commit = newCommitSha();

before(async () => {
  hub = await startFakeHub();
  const dir = mkdtempSync(join(tmpdir(), 'scaling-data-'));
  const files: Record<string, { content: Buffer; lfs?: boolean }> = {
    'README.md': { content: Buffer.from('# toy\n') },
  };
  for (const i of [0, 1]) {
    const path = join(dir, `part${i}.parquet`);
    await writeHubLayoutParquet(path, activations(ROWS_PER_FILE, i + 1), D, { rowGroupSize: 2048 });
    files[`data/train-0000${i}-of-00002.parquet`] = { content: readFileSync(path), lfs: true };
  }
  hub.repos.set('dataset:mech-interp-uam/llama-mlp8-outputs', {
    type: 'dataset',
    refs: { main: commit },
    commits: { [commit]: files },
  });
});
after(() => hub.close());

test('scaling.yaml at toy sizes: hub download -> ingest -> norm -> sweeps -> laws -> final -> report', {
  timeout: 600_000,
}, async () => {
  const project = makeProject('scaling-e2e-');
  copyFileSync(join(REPO_ROOT, 'pipelines/scaling.yaml'), join(project.pipelines, 'scaling.yaml'));
  writeFileSync(
    join(project.pipelines, 'toy.yaml'),
    [
      'name: toy',
      'extends: scaling.yaml',
      'stages:',
      '  final:',
      '    with: { n_samples: 4000, checkpoint_every: 0 }',
      '',
    ].join('\n'),
  );
  const set = [
    `d_in=${D}`,
    `dataset_rows=${2 * ROWS_PER_FILE}`,
    'eval_rows=1024',
    'norm_batches=4',
    'batch_size=256',
    'small_d_sae=[16,32,64]',
    'small_n_samples=[2000,4000]',
    'sweep_d_sae=[16,32,64]',
    'sweep_n_samples=2000',
    'sweep_lrs=[0.001,0.003,0.01]',
    'target_l0=3',
    'base_lr=0.005',
    'lr_warmup_steps=5',
    'bandwidth=0.1',
    'threshold_init=0.05',
    'l0_coefficient=0.01',
    'final_d_sae=128',
    'final_l0_coefficient=0.01',
    'context_size=128',
  ].flatMap((s) => ['--set', s]);
  const env = { HF_ENDPOINT: hub.endpoint };
  const file = join(project.pipelines, 'toy.yaml');

  const run = await cli(['run', file, '--progress', 'plain', ...set], project.dir, env);
  assert.equal(run.code, 0, run.stdout + run.stderr);

  const download = JSON.parse((await cli(['show', file, 'download', '--json', ...set], project.dir, env)).stdout);
  assert.equal(download.commit, commit, 'the revision is pinned to the commit the hub resolved');
  assert.deepEqual(
    download.files.map((f: { path: string }) => f.path),
    ['data/train-00000-of-00002.parquet', 'data/train-00001-of-00002.parquet'],
  );
  const ingest = JSON.parse((await cli(['show', file, 'ingest', '--json', ...set], project.dir, env)).stdout);
  assert.deepEqual([ingest.rows, ingest.d, ingest.dtype], [2 * ROWS_PER_FILE, D, 'float16']);

  const lrLaw = JSON.parse((await cli(['show', file, 'lr_law', '--json', ...set], project.dir, env)).stdout);
  const final = JSON.parse((await cli(['show', file, 'final', '--json', ...set], project.dir, env)).stdout);
  assert.equal(
    final.lr,
    lrLaw.lr,
    'the final learning rate is the one the lr law decided (law, or its stated fallback)',
  );
  assert.ok(['law', 'fallback'].includes(lrLaw.decision.source));
  assert.equal(final.d_sae, 128);
  assert.ok(final.fvu > 0 && final.fvu < 1, `final FVU ${final.fvu}`);
  // SAELens's metadata: what the activations are, and the --set context length (its evaluation needs one).
  const meta = JSON.parse(readFileSync(join(final.sae, 'cfg.json'), 'utf8')).metadata;
  assert.deepEqual(
    [meta.model_name, meta.hook_name, meta.dataset_path, meta.context_size],
    ['meta-llama/Llama-3.2-1B', 'blocks.8.hook_mlp_out', 'mech-interp-uam/llama-mlp8-outputs', 128],
  );
  const report = JSON.parse((await cli(['show', file, 'report', '--json', ...set], project.dir, env)).stdout);
  assert.match(readFileSync(report.html, 'utf8'), /Learning-rate law/);
});
