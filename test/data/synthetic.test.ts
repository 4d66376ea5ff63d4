import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { SyntheticGenerator, zipfFrequencies, type SyntheticSpec } from '../../src/data/synthetic.js';
import { readSafetensors } from '../../src/data/safetensors.js';
import { decodeHalf, encodeHalf } from '../../src/data/float16.js';
import stage from '../../src/stages/synthetic-activations.js';
import { runStageDirect } from '../helpers/run-stage.js';

const spec: SyntheticSpec = {
  d: 16,
  nFeatures: 64,
  meanActive: 4,
  zipfExponent: 1,
  correlation: 0,
  groupSize: 4,
  noiseStd: 0.01,
  biasNorm: 0,
  seed: 3,
};

test('zipf frequencies: sum to mean_active, follow the power law, capped at 1', () => {
  const p = zipfFrequencies(100, 5, 0.8);
  assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 5) < 1e-9);
  for (const i of [1, 10, 50]) assert.ok(Math.abs(p[i] / p[0] - (i + 1) ** -0.8) < 1e-12);
  const capped = zipfFrequencies(50, 20, 2); // the top features saturate
  assert.equal(capped[0], 1);
  assert.ok(capped.every((x) => x <= 1));
  assert.ok(Math.abs(capped.reduce((a, b) => a + b, 0) - 20) < 1e-9);
  assert.throws(() => zipfFrequencies(10, 11, 1), /mean_active must be in \(0, n_features=10\]/);
});

function checkFrequencies(s: SyntheticSpec, rows: number): void {
  const gen = new SyntheticGenerator(s);
  gen.nextRows(rows);
  const l0 = gen.activeCounts.reduce((a, b) => a + b, 0) / rows;
  assert.ok(Math.abs(l0 - s.meanActive) < 0.05 * s.meanActive, `L0 ${l0} vs mean_active ${s.meanActive}`);
  for (let i = 0; i < s.nFeatures; i++) {
    const p = gen.frequencies[i];
    const empirical = gen.activeCounts[i] / rows;
    const sigma = Math.sqrt((p * (1 - p)) / rows);
    assert.ok(
      Math.abs(empirical - p) <= 5 * sigma + 1e-9,
      `feature ${i}: active fraction ${empirical} vs expected ${p}`,
    );
  }
}

test('empirical active fraction per feature follows the requested Zipf law; L0 ~ mean_active', () => {
  checkFrequencies(spec, 30000);
  checkFrequencies({ ...spec, zipfExponent: 0.5, meanActive: 6, seed: 9 }, 30000);
});

test("correlated groups keep each feature's marginal frequency", () => {
  checkFrequencies({ ...spec, correlation: 0.7 }, 30000);
});

test('correlation makes group members fire together', () => {
  // No noise, orthogonal-ish features in d=64: a member's code shows in its projection.
  const s = { ...spec, d: 64, nFeatures: 8, meanActive: 1, zipfExponent: 0, groupSize: 2, noiseStd: 0 };
  const coFiring = (correlation: number) => {
    const gen = new SyntheticGenerator({ ...s, correlation });
    let both = 0;
    const before = new Float64Array(8);
    for (let r = 0; r < 4000; r++) {
      before.set(gen.activeCounts);
      gen.nextRows(1);
      if (gen.activeCounts[0] > before[0] && gen.activeCounts[1] > before[1]) both++;
    }
    return both / 4000;
  };
  const p = 1 / 8;
  assert.ok(Math.abs(coFiring(0) - p * p) < 0.01, `independent: ${coFiring(0)}`);
  assert.ok(coFiring(0.8) > 0.8 * p - 0.02, `correlated: ${coFiring(0.8)}`);
});

test('rows do not depend on chunking, and the same seed gives the same bits', () => {
  const a = new SyntheticGenerator({ ...spec, correlation: 0.3 });
  const whole = a.nextRows(500);
  const b = new SyntheticGenerator({ ...spec, correlation: 0.3 });
  const parts = [b.nextRows(7), b.nextRows(300), b.nextRows(193)];
  assert.deepEqual(Buffer.from(concat(parts).buffer), Buffer.from(whole.buffer));
  const c = new SyntheticGenerator({ ...spec, correlation: 0.3, seed: 4 }).nextRows(500);
  assert.notDeepEqual(Buffer.from(c.buffer), Buffer.from(whole.buffer));
});

test('stage: byte-identical reruns, hub-layout parquet readable by hyparquet, unit-norm dictionary', async () => {
  const params = {
    d: 16,
    rows: 3000,
    n_features: 64,
    mean_active: 4,
    files: 2,
    row_group_rows: 1000,
    seed: 5,
    correlation: 0.2,
  };
  const first = await runStageDirect(stage, params);
  const second = await runStageDirect(stage, params);
  assert.deepEqual(first.outputs, {
    dir: 'data',
    dictionary: 'dictionary.safetensors',
    d: 16,
    rows: 3000,
    n_features: 64,
  });
  const dataDir = (run: typeof first) => join(run.outDir, 'data', 'data');
  const names = readdirSync(dataDir(first)).sort();
  assert.deepEqual(names, ['train-00000-of-00002.parquet', 'train-00001-of-00002.parquet']);
  for (const f of [...names.map((n) => join('data', 'data', n)), 'dictionary.safetensors']) {
    assert.ok(
      readFileSync(join(first.outDir, f)).equals(readFileSync(join(second.outDir, f))),
      `${f} differs between runs`,
    );
  }

  // The second file holds rows 1500..2999: read it with hyparquet's generic reader.
  const { parquetReadObjects, parquetMetadataAsync, asyncBufferFromFile } = await import('hyparquet');
  const { compressors } = await import('hyparquet-compressors');
  const file = await asyncBufferFromFile(join(dataDir(first), names[1]));
  const meta = await parquetMetadataAsync(file);
  assert.equal(Number(meta.num_rows), 1500);
  assert.deepEqual(
    meta.row_groups.map((g) => Number(g.num_rows)),
    [1000, 500],
  );
  const rows = (await parquetReadObjects({ file, compressors, rowStart: 0, rowEnd: 5 })) as Array<{
    activations: number[];
  }>;
  const gen = new SyntheticGenerator({ ...spec, nFeatures: 64, meanActive: 4, seed: 5, correlation: 0.2 });
  gen.nextRows(1500);
  const want = gen.nextRows(5);
  const got = rows.flatMap((r) => Array.from(r.activations));
  assert.equal(got.length, 5 * 16);
  got.forEach((v, i) => assert.equal(v, decodeHalf(encodeHalf(want[i])), `value ${i}`));

  const { tensors } = readSafetensors(join(first.outDir, 'dictionary.safetensors'));
  assert.deepEqual(tensors.features.shape, [64, 16]);
  const features = tensors.features.data as Float32Array;
  for (let f = 0; f < 64; f++) {
    let sq = 0;
    for (let i = 0; i < 16; i++) sq += features[f * 16 + i] ** 2;
    assert.ok(Math.abs(Math.sqrt(sq) - 1) < 1e-6, `feature ${f} norm ${Math.sqrt(sq)}`);
  }
  const freq = Array.from(tensors.frequencies.data as Float32Array);
  assert.ok(Math.abs(freq.reduce((a, b) => a + b, 0) - 4) < 1e-4);
  assert.deepEqual(freq, Array.from(Float32Array.from(gen.frequencies)));
});

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

test('stage: bad sizes are refused with the field named', async () => {
  await assert.rejects(runStageDirect(stage, { d: 8, rows: 3, files: 4 }), /files=4 is more than rows=3/);
  await assert.rejects(
    runStageDirect(stage, { d: 8, rows: 10, n_features: 4, mean_active: 5 }),
    /mean_active must be in \(0, n_features=4\], got 5/,
  );
});
