/**
 * The embedded data path end to end: synthetic-activations -> ingest -> estimate-norm and the
 * loader, checking that the rows the trainer receives are the generated rows (float16-rounded).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import synthetic from '../../src/stages/synthetic-activations.js';
import ingest from '../../src/stages/ingest.js';
import estimateNorm from '../../src/stages/estimate-norm.js';
import { BatchLoader, openStore } from '../../src/data/loader.js';
import { SyntheticGenerator } from '../../src/data/synthetic.js';
import { decodeHalf, encodeHalf } from '../../src/data/float16.js';
import { runStageDirect } from '../helpers/run-stage.js';

test('synthetic parquet -> ingest -> store rows equal the generated rows; norm estimated on them', async () => {
  const params = {
    d: 32,
    rows: 5000,
    n_features: 128,
    mean_active: 5,
    files: 3,
    row_group_rows: 700,
    seed: 11,
    noise_std: 0.02,
  };
  const synth = await runStageDirect(synthetic, params);
  const ing = await runStageDirect(ingest, { source: join(synth.outDir, synth.outputs.dir as string) });
  assert.equal(ing.outputs.rows, 5000);
  assert.equal(ing.outputs.d, 32);
  const storeDir = join(ing.outDir, ing.outputs.store as string);

  const gen = new SyntheticGenerator({
    d: 32,
    nFeatures: 128,
    meanActive: 5,
    zipfExponent: 1,
    correlation: 0,
    groupSize: 4,
    noiseStd: 0.02,
    biasNorm: 0,
    seed: 11,
  });
  const want = gen.nextRows(5000);
  const store = openStore(storeDir);
  const loader = new BatchLoader(store, { batchSize: 1000, shuffle: false, split: 'all' });
  let expectedNorm = 0;
  for (let b = 0; b < 5; b++) {
    const batch = await loader.next();
    for (let i = 0; i < batch.length; i++) {
      const v = decodeHalf(encodeHalf(want[b * batch.length + i]));
      if (batch[i] !== v) assert.fail(`row ${b * 1000 + Math.floor(i / 32)} col ${i % 32}: ${batch[i]} != ${v}`);
    }
    for (let r = 0; r < 1000; r++) {
      let sq = 0;
      for (let i = 0; i < 32; i++) sq += batch[r * 32 + i] ** 2;
      expectedNorm += Math.sqrt(sq) / 5000;
    }
  }
  loader.close();
  store.close();

  // One epoch over every row (eval_rows 0) is the exact mean norm, in any order.
  const norm = await runStageDirect(estimateNorm, { store: storeDir, batches: 5, batch_size: 1000, eval_rows: 0 });
  assert.ok(
    Math.abs((norm.outputs.mean_norm as number) - expectedNorm) < 1e-9,
    `${norm.outputs.mean_norm} vs ${expectedNorm}`,
  );
  assert.ok((norm.outputs.mean_norm as number) > 1, 'rows carry ~5 unit features');
});
