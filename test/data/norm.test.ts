import { test } from 'node:test';
import assert from 'node:assert/strict';
import stage from '../../src/stages/estimate-norm.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { writeTestStore } from './store-fixture.js';

const D = 12;

test('estimate-norm: rows all of norm 3 give exactly 3 (squared 9)', async () => {
  // Rows with different directions but norm exactly 3 in float16: (3,0,..), (0,..,-3), (1,2,2,0..)
  const v = new Float32Array(200 * D);
  for (let r = 0; r < 200; r++) {
    const kind = r % 3;
    if (kind === 0) v[r * D + (r % D)] = 3;
    else if (kind === 1) v[r * D + D - 1] = -3;
    else v.set([1, 2, -2], r * D + 4);
  }
  const store = writeTestStore(v, D);
  const { outputs } = await runStageDirect(stage, { store, batches: 5, batch_size: 16, eval_rows: 20 });
  assert.deepEqual(outputs, { mean_norm: 3, mean_sq_norm: 9, scale: 3, rows_sampled: 80 });
});

test('estimate-norm: seeded, reproducible, and samples only the training split', async () => {
  // Row r has norm r + 1 (one non-zero value): the estimate says which rows were sampled.
  const rows = 300;
  const v = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) v[r * D] = r + 1;
  const store = writeTestStore(v, D, 'float32');
  const run = async (seed: number) =>
    (await runStageDirect(stage, { store, batches: 4, batch_size: 25, seed, eval_rows: 100 })).outputs;
  const a = await run(1);
  assert.deepEqual(await run(1), a);
  assert.notDeepEqual(await run(2), a);
  // 100 distinct rows out of the first 200 (norms 1..200): mean within the possible range, not above.
  assert.ok((a.mean_norm as number) > 50 && (a.mean_norm as number) < 150, `mean ${a.mean_norm}`);
  // The whole training split sampled once (one epoch, no replacement): the exact mean of 1..200.
  const all = (await runStageDirect(stage, { store, batches: 8, batch_size: 25, eval_rows: 100 })).outputs;
  assert.equal(all.mean_norm, 100.5);
  assert.equal(all.mean_sq_norm, (200 * 201 * 401) / 6 / 200);
  await assert.rejects(runStageDirect(stage, { store, eval_rows: 300 }), /leaves no training rows/);
});
