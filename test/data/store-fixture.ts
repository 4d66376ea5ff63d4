/**
 * Writes small activation stores for tests, straight from the format (StoreHeader in src/formats/store.ts)
 * (the format is two files; tests must not depend on the ingest stage to exist).
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { floatToHalf } from '../../src/data/float16.js';

export function writeTestStore(
  values: Float32Array,
  d: number,
  dtype: 'float16' | 'float32' = 'float16',
  dir?: string,
): string {
  const out = dir ?? mkdtempSync(join(tmpdir(), 'store-'));
  mkdirSync(out, { recursive: true });
  const rows = values.length / d;
  if (!Number.isInteger(rows)) throw new Error(`values (${values.length}) is not a multiple of d=${d}`);
  const bytes = dtype === 'float16' ? floatToHalf(values) : Float32Array.from(values);
  writeFileSync(join(out, 'data.bin'), new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const header = {
    format: 'activation-store/1',
    rows,
    d,
    dtype,
    byteOrder: 'little',
    sources: [],
    column: 'activations',
  };
  writeFileSync(join(out, 'store.json'), JSON.stringify(header));
  return out;
}

/** A store whose row r holds the value r in every column, so a batch says which rows it holds. */
export function rowIdStore(rows: number, d: number, dir?: string): string {
  const v = new Float32Array(rows * d);
  for (let r = 0; r < rows; r++) v.fill(r, r * d, (r + 1) * d);
  return writeTestStore(v, d, rows <= 2048 ? 'float16' : 'float32', dir);
}

/** Row ids of a batch written by rowIdStore (divided by `scale` when the loader scaled). */
export function rowIds(batch: Float32Array, d: number, scale = 1): number[] {
  const ids: number[] = [];
  for (let k = 0; k < batch.length / d; k++) ids.push(Math.round(batch[k * d] / scale));
  return ids;
}
