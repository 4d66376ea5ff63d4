/**
 * Test fixtures for the SAE trainer: small float32 activation stores written in the fixed
 * store format, synthetic sparse data made of known unit-norm features, and a plain-JS
 * JumpReLU forward pass (independent of tfjs) to check exported weights against.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mulberry32 } from '../../src/random.js';
import { encodeSafetensors } from '../../src/sae/safetensors.js';

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sae-${prefix}-`));
}

/** Writes store.json + data.bin (float32, little-endian) holding `values` (rows x d). */
export function writeStore(dir: string, values: Float32Array, d: number): string {
  mkdirSync(dir, { recursive: true });
  const rows = values.length / d;
  writeFileSync(join(dir, 'data.bin'), Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  writeFileSync(
    join(dir, 'store.json'),
    JSON.stringify({
      format: 'activation-store/1',
      rows,
      d,
      dtype: 'float32',
      byteOrder: 'little',
      sources: [{ path: 'fixture', rows, sha256: '0'.repeat(64) }],
      column: 'activations',
    }),
  );
  return dir;
}

/**
 * Rows that are sparse non-negative combinations of `nFeatures` random unit vectors
 * (each fires with probability `p`, magnitude uniform in [1, 2]), scaled by `scale`.
 * Returns the data and the features (for ground-truth recovery).
 */
export function sparseData(rows: number, d: number, nFeatures: number, p: number, seed: number, scale = 1) {
  const rng = mulberry32(seed);
  const features = new Float32Array(nFeatures * d);
  for (let f = 0; f < nFeatures; f++) {
    let n = 0;
    for (let k = 0; k < d; k++) {
      const v = gaussian(rng);
      features[f * d + k] = v;
      n += v * v;
    }
    for (let k = 0; k < d; k++) features[f * d + k] /= Math.sqrt(n);
  }
  const x = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < nFeatures; f++) {
      if (rng() >= p) continue;
      const a = scale * (1 + rng());
      for (let k = 0; k < d; k++) x[r * d + k] += a * features[f * d + k];
    }
  }
  return { x, features };
}

function gaussian(rng: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

export function writeDictionary(path: string, features: Float32Array, n: number, d: number): string {
  writeFileSync(path, encodeSafetensors({ features: { shape: [n, d], data: features } }));
  return path;
}

/** Plain-JS JumpReLU forward: x_hat for each row of x (SAELens semantics). */
export function referenceForward(
  w: { W_enc: Float32Array; b_enc: Float32Array; W_dec: Float32Array; b_dec: Float32Array; threshold: Float32Array },
  x: Float32Array,
  dIn: number,
  dSae: number,
  applyBDecToInput: boolean,
): Float32Array {
  const rows = x.length / dIn;
  const out = new Float32Array(x.length);
  for (let r = 0; r < rows; r++) {
    const xr = x.subarray(r * dIn, (r + 1) * dIn);
    for (let k = 0; k < dIn; k++) out[r * dIn + k] = w.b_dec[k];
    for (let j = 0; j < dSae; j++) {
      let z = w.b_enc[j];
      for (let i = 0; i < dIn; i++) z += (xr[i] - (applyBDecToInput ? w.b_dec[i] : 0)) * w.W_enc[i * dSae + j];
      if (!(z > w.threshold[j])) continue;
      for (let k = 0; k < dIn; k++) out[r * dIn + k] += z * w.W_dec[j * dIn + k];
    }
  }
  return out;
}
