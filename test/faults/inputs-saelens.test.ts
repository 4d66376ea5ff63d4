/**
 * init_from on SAELens folders as SAELens writes them: float16 and bfloat16 weights load exactly;
 * normalize_activations is honoured (expected_average_only_in: the scaler folded in, the same
 * function on raw inputs) or refused with a clear error, never silently ignored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readSaeLens,
  writeSaeLens,
  SAE_CFG_FILE,
  SAE_WEIGHTS_FILE,
  type SaeLensWeights,
} from '../../src/sae/export.js';
import { encodeSafetensors } from '../../src/data/safetensors.js';
import { decodeHalf, encodeHalf } from '../../src/data/float16.js';

const dIn = 4;
const dSae = 6;

/** Weights whose values are exact in float16 and bfloat16 (small multiples of 1/8). */
function weights(): SaeLensWeights {
  let k = 0;
  const next = (n: number) => Float32Array.from({ length: n }, () => (((k++ * 7) % 17) - 8) / 8);
  return {
    W_enc: next(dIn * dSae),
    W_dec: next(dSae * dIn),
    b_enc: next(dSae),
    b_dec: next(dIn),
    threshold: Float32Array.from({ length: dSae }, (_, i) => (i + 1) / 8),
  };
}

const SHAPES: Record<keyof SaeLensWeights, number[]> = {
  W_enc: [dIn, dSae],
  W_dec: [dSae, dIn],
  b_enc: [dSae],
  b_dec: [dIn],
  threshold: [dSae],
};

function saeFolder(w: SaeLensWeights, dtype: 'F32' | 'F16' | 'BF16', cfg: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'saelens-'));
  writeSaeLens(dir, w, {
    dIn,
    dSae,
    applyBDecToInput: true,
    modelName: 'm',
    hookName: 'h',
    datasetPath: 'd',
    contextSize: null,
  });
  const encode = (x: Float32Array) =>
    dtype === 'F16'
      ? Uint16Array.from(x, encodeHalf)
      : dtype === 'BF16'
        ? Uint16Array.from(new Uint32Array(x.buffer.slice(0)), (b) => b >>> 16)
        : x;
  const tensors = Object.fromEntries(
    (Object.keys(SHAPES) as Array<keyof SaeLensWeights>).map((name) => [
      name,
      { dtype, shape: SHAPES[name], data: encode(w[name]) },
    ]),
  );
  writeFileSync(join(dir, SAE_WEIGHTS_FILE), encodeSafetensors(tensors as never));
  const cfgPath = join(dir, SAE_CFG_FILE);
  writeFileSync(
    cfgPath,
    JSON.stringify({
      architecture: 'jumprelu',
      d_in: dIn,
      d_sae: dSae,
      dtype: dtype === 'F32' ? 'float32' : 'float16',
      apply_b_dec_to_input: true,
      ...cfg,
    }),
  );
  return dir;
}

/** SAELens's JumpReLU forward on one input. */
function forward(w: SaeLensWeights, x: number[]): number[] {
  const out = Array.from(w.b_dec);
  for (let j = 0; j < dSae; j++) {
    let pre = w.b_enc[j];
    for (let i = 0; i < dIn; i++) pre += (x[i] - w.b_dec[i]) * w.W_enc[i * dSae + j];
    const f = pre > w.threshold[j] ? pre : 0;
    for (let i = 0; i < dIn; i++) out[i] += f * w.W_dec[j * dIn + i];
  }
  return out;
}

test('init_from: float16 and bfloat16 SAELens weights load exactly', () => {
  const w = weights();
  for (const dtype of ['F16', 'BF16'] as const) {
    const loaded = readSaeLens(saeFolder(w, dtype)).weights;
    for (const name of Object.keys(SHAPES) as Array<keyof SaeLensWeights>) {
      const want = dtype === 'F16' ? Float32Array.from(w[name], (v) => decodeHalf(encodeHalf(v))) : w[name];
      assert.deepEqual(loaded[name], want, `${dtype} ${name}`);
    }
  }
});

test('init_from: expected_average_only_in folds activation_scaler.json in (same function on raw inputs)', () => {
  const w = weights();
  const s = 2.5;
  const dir = saeFolder(w, 'F32', { normalize_activations: 'expected_average_only_in' });
  assert.throws(
    () => readSaeLens(dir),
    /normalize_activations is "expected_average_only_in" but .*activation_scaler\.json is missing/,
  );
  writeFileSync(join(dir, 'activation_scaler.json'), JSON.stringify({ scaling_factor: s }));
  const folded = readSaeLens(dir).weights;
  for (const x of [
    [0.3, -1, 2, 0.5],
    [1, 1, 1, 1],
    [-0.2, 0.4, 0, 3],
  ]) {
    // SAELens: scale the input, run the SAE, unscale the reconstruction.
    const want = forward(
      w,
      x.map((v) => v * s),
    ).map((v) => v / s);
    const got = forward(folded, x);
    got.forEach((v, i) => assert.ok(Math.abs(v - want[i]) < 1e-5, `${v} vs ${want[i]}`));
  }
  writeFileSync(join(dir, 'activation_scaler.json'), JSON.stringify({ scaling_factor: null }));
  assert.throws(() => readSaeLens(dir), /scaling_factor must be a positive number, got null/);
});

test('init_from: per-input normalisations are refused, naming the file and the value', () => {
  for (const mode of ['constant_norm_rescale', 'layer_norm', 'something_new']) {
    const dir = saeFolder(weights(), 'F32', { normalize_activations: mode });
    assert.throws(
      () => readSaeLens(dir),
      new RegExp(`cfg\\.json: normalize_activations is "${mode}": .*supported: "none", "expected_average_only_in"`),
    );
  }
});
