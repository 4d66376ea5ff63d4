/**
 * The SAELens export: safetensors bytes against the format, round trip through our reader,
 * the folded normalisation on raw activations, and init_from reproducing an exported SAE.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeSafetensors, decodeSafetensors } from '../../src/sae/safetensors.js';
import { foldNormalisation, readSaeLens, unfoldNormalisation, writeSaeLens } from '../../src/sae/export.js';
import { initialWeights, type SaeWeights } from '../../src/sae/jumprelu.js';
import { mulberry32 } from '../../src/random.js';
import { referenceForward, sparseData, tempDir, writeStore } from './fixtures.js';
import { runTrainSae } from './stage-ctx.js';

test('safetensors bytes follow the format exactly', () => {
  const a = new Float32Array([1.5, -2, 3.25, 0.1, 7, 8]);
  const b = new Float32Array([Math.PI]);
  const bytes = encodeSafetensors({ a: { shape: [2, 3], data: a }, b: { shape: [1], data: b } }, { note: 'x' });
  const n = Number(bytes.readBigUInt64LE(0));
  assert.equal(n % 8, 0, 'header padded to a multiple of 8');
  const headerText = bytes.subarray(8, 8 + n).toString('utf8');
  assert.match(headerText, /^\{.*\} *$/);
  const header = JSON.parse(headerText);
  assert.deepEqual(header.__metadata__, { note: 'x' });
  assert.deepEqual(header.a, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
  assert.deepEqual(header.b, { dtype: 'F32', shape: [1], data_offsets: [24, 28] });
  assert.equal(bytes.length, 8 + n + 28);
  const expected = Buffer.alloc(28);
  [...a, ...b].forEach((v, i) => expected.writeFloatLE(v, 4 * i));
  assert.deepEqual(bytes.subarray(8 + n), expected);
  const back = decodeSafetensors(bytes);
  assert.deepEqual(back.tensors.a.data, a);
  assert.deepEqual(back.tensors.b.shape, [1]);
  assert.throws(() => decodeSafetensors(bytes.subarray(0, bytes.length - 4)), /offsets .* do not match/);
});

function randomWeights(dIn: number, dSae: number, seed: number): SaeWeights {
  const rng = mulberry32(seed);
  const w = initialWeights({ dIn, dSae }, 0.05, rng);
  w.b_enc.forEach((_, i) => (w.b_enc[i] = 0.1 * (rng() - 0.5)));
  w.b_dec.forEach((_, i) => (w.b_dec[i] = 0.5 * (rng() - 0.5)));
  w.log_threshold.forEach((_, i) => (w.log_threshold[i] = Math.log(0.02 + 0.2 * rng())));
  return w;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** s * (the training-unit model on x / s): what the exported file must compute on raw x. */
function normalisedForward(w: SaeWeights, x: Float32Array, s: number, dIn: number, dSae: number): Float32Array {
  const out = referenceForward(
    { ...w, threshold: w.log_threshold.map(Math.exp) },
    x.map((v) => v / s),
    dIn,
    dSae,
    true,
  );
  return out.map((v) => v * s);
}

test('exported SAE works on raw activations; round trip; init_from un-folds exactly', async () => {
  const dIn = 6,
    dSae = 12,
    s = 3.4,
    s2 = 1.7;
  const w = randomWeights(dIn, dSae, 11);
  const dir = join(tempDir('export'), 'sae');
  const folded = foldNormalisation(w, s);
  writeSaeLens(dir, folded, {
    dIn,
    dSae,
    applyBDecToInput: true,
    modelName: 'm',
    hookName: 'h',
    datasetPath: 'ds',
    contextSize: 1024,
  });

  const cfg = JSON.parse(readFileSync(join(dir, 'cfg.json'), 'utf8'));
  assert.equal(cfg.architecture, 'jumprelu');
  assert.equal(cfg.d_in, dIn);
  assert.equal(cfg.d_sae, dSae);
  assert.equal(cfg.dtype, 'float32');
  assert.equal(cfg.normalize_activations, 'none');
  assert.equal(cfg.apply_b_dec_to_input, true);
  assert.equal(cfg.metadata.sae_lens_version, '6.0.0');
  assert.equal(cfg.metadata.hook_name, 'h');
  // SAELens's evaluation tokenizes to this length: null makes it raise.
  assert.equal(cfg.metadata.context_size, 1024);
  const loaded = readSaeLens(dir);
  for (const k of Object.keys(folded) as Array<keyof typeof folded>) assert.deepEqual(loaded.weights[k], folded[k], k);

  // Raw x through the exported file == s * (the normalised model on x / s).
  const rng = mulberry32(2);
  const rows = 20;
  const x = new Float32Array(rows * dIn).map(() => s * 2 * (rng() - 0.5));
  const rawOut = referenceForward(loaded.weights, x, dIn, dSae, true);
  const normOut = normalisedForward(w, x, s, dIn, dSae);
  assert.ok(maxAbsDiff(rawOut, normOut) < 1e-4, `fold: ${maxAbsDiff(rawOut, normOut)}`);
  const active = rawOut.some((v, i) => Math.abs(v - folded.b_dec[i % dIn]) > 1e-3);
  assert.ok(active, 'some features fire (the comparison is not only b_dec)');

  // init_from with another norm scale: the un-folded model (unit decoder rows) reproduces the file.
  const unfolded = unfoldNormalisation(loaded.weights, s2, dIn, dSae);
  for (let j = 0; j < dSae; j++) {
    assert.ok(
      Math.abs(Math.hypot(...unfolded.W_dec.subarray(j * dIn, (j + 1) * dIn)) - 1) < 1e-5,
      `row ${j} unit norm`,
    );
  }
  const out2 = normalisedForward(unfolded, x, s2, dIn, dSae);
  assert.ok(maxAbsDiff(rawOut, out2) < 1e-4, `unfold: ${maxAbsDiff(rawOut, out2)}`);
});

test('train-sae init_from continues from an exported SAE (same outputs after a negligible step)', async () => {
  const root = tempDir('initfrom');
  const d = 8,
    dSae = 16;
  const { x } = sparseData(512 + 64, d, 12, 0.15, 9, 2);
  const store = writeStore(join(root, 'store'), x, d);
  const base = {
    store,
    eval_rows: 64,
    d_sae: dSae,
    batch_size: 32,
    backend: 'cpu',
    threshold_init: 0.05,
    bandwidth: 0.05,
    log_every: 10,
  };
  const first = await runTrainSae(
    { ...base, steps: 30, lr: 1e-2, lr_warmup_steps: 2, l0_coefficient: 1e-2, norm_scale: 2 },
    { outDir: join(root, 'a/out'), workDir: join(root, 'a/work') },
  );
  const saeDir = join(root, 'a/out/sae');
  const second = await runTrainSae(
    { ...base, steps: 1, lr: 1e-12, lr_warmup_steps: 0, norm_scale: 5, init_from: saeDir },
    { outDir: join(root, 'b/out'), workDir: join(root, 'b/work') },
  );
  const a = readSaeLens(saeDir).weights,
    b = readSaeLens(join(root, 'b/out/sae')).weights;
  const rawA = referenceForward(a, x, d, dSae, true),
    rawB = referenceForward(b, x, d, dSae, true);
  assert.ok(maxAbsDiff(rawA, rawB) < 1e-4, `outputs differ by ${maxAbsDiff(rawA, rawB)}`);
  const mseA = first.outputs.mse as number,
    mseB = second.outputs.mse as number;
  assert.ok(
    Math.abs(mseA * 4 - mseB * 25) < 1e-3 * mseA * 4,
    'same raw-unit eval error (mse is in normalised units: x s^2)',
  );
});
