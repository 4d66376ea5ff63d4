/**
 * Ingest on inputs a previous version got wrong: list<double> rounded twice, NaN/inf and
 * out-of-range values stored silently, a valid 0-row row group refused, a hub cache snapshot
 * (all symbolic links) invisible, byte-stream-split decoded at under 1M values/s. Files are
 * written by an independent writer (parquet-wasm) or, for the 0-row row group, by pyarrow
 * (test/fixtures/, see there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ingest from '../../src/stages/ingest.js';
import { ingestParquet } from '../../src/data/parquet/ingest.js';
import { decodeHalf, encodeHalf } from '../../src/data/float16.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { regularRows, writeFixture, type FixtureOptions } from '../ingest/arrow-writer.js';

const FIXTURES = resolve(import.meta.dirname, '../../../test/fixtures');
const dir = mkdtempSync(join(tmpdir(), 'ingest-trust-'));

function storeData(outDir: string): Uint16Array | Float32Array {
  const header = JSON.parse(readFileSync(join(outDir, 'store/store.json'), 'utf8'));
  const buf = readFileSync(join(outDir, 'store/data.bin'));
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  return header.dtype === 'float16' ? new Uint16Array(bytes) : new Float32Array(bytes);
}

async function ingestFails(params: Record<string, unknown>): Promise<string> {
  await assert.rejects(runStageDirect(ingest, params), (e: Error) => {
    params.message = e.message;
    return true;
  });
  return params.message as string;
}

const PLAIN_DOUBLE: FixtureOptions = {
  element: 'double',
  fixedSize: false,
  compression: 'none',
  dictionary: false,
  rowGroupSize: 4,
};

test('list<double> -> float16 is rounded once, as numpy astype(float16)', async () => {
  // numpy: np.array([...], dtype=np.float64).astype(np.float16).view(np.uint16)
  const doubles = [1 + 2 ** -11 + 2 ** -40, 65519.99, 2 ** -25 + 2 ** -60, -(1 + 3 * 2 ** -11 + 2 ** -45)];
  const numpy = [0x3c01, 0x7bff, 0x0001, 0xbc02];
  const path = join(dir, 'ties.parquet');
  writeFixture(path, regularRows(doubles, 1, 4), PLAIN_DOUBLE);
  const run = await runStageDirect(ingest, { source: path });
  assert.deepEqual([...storeData(run.outDir)], numpy);

  // And for random doubles across the range: the nearest half, ties to the even one.
  let s = 7;
  const rand = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  for (let i = 0; i < 20000; i++) {
    const v = (rand() - 0.5) * 2 ** Math.floor(rand() * 40 - 26);
    const h = encodeHalf(v);
    const err = Math.abs(decodeHalf(h) - v);
    for (const n of [h - 1, h + 1]) {
      if ((n & 0x7fff) >= 0x7c00 || ((n ^ h) & 0x8000) !== 0) continue;
      const other = Math.abs(decodeHalf(n) - v);
      assert.ok(err < other || (err === other && (h & 1) === 0), `${v}: ${h.toString(16)} is not the nearest half`);
    }
  }
});

test('NaN, inf and values beyond float16 are refused naming file, row and column; non_finite: keep stores them', async () => {
  const cases: Array<{ name: string; opts: FixtureOptions; values: number[]; bad: RegExp }> = [
    { name: 'nan-double', opts: PLAIN_DOUBLE, values: [NaN], bad: /NaN is not finite/ },
    {
      name: 'inf-float',
      opts: { ...PLAIN_DOUBLE, element: 'float' },
      values: [-Infinity],
      bad: /-Infinity is not finite/,
    },
    {
      name: 'big-float',
      opts: { ...PLAIN_DOUBLE, element: 'float' },
      values: [70000],
      bad: /70000 is beyond the float16 range of the store/,
    },
    {
      name: 'inf-half',
      opts: { ...PLAIN_DOUBLE, element: 'float16', fixedSize: true },
      values: [0x7c00],
      bad: /Infinity is not finite/,
    },
  ];
  for (const c of cases) {
    const d = 3;
    const values = Array.from({ length: 8 * d }, (_, i) => (c.opts.element === 'float16' ? 0x3c00 : i / 10));
    values[5 * d + 2] = c.values[0]; // row 5 (row group 1 of 4-row groups), list index 2
    const path = join(dir, `${c.name}.parquet`);
    writeFixture(path, regularRows(values, 8, d), c.opts);
    const message = await ingestFails({ source: path });
    assert.match(message, new RegExp(`${c.name}\\.parquet: row group 1, row 5, column activations\\[2\\]: `), message);
    assert.match(message, c.bad, message);
    assert.match(message, /non_finite: keep/);
    const kept = storeData((await runStageDirect(ingest, { source: path, non_finite: 'keep' })).outDir);
    const want = { 'nan-double': 0x7e00, 'inf-float': 0xfc00, 'big-float': 0x7c00, 'inf-half': 0x7c00 }[c.name];
    assert.equal(kept[5 * d + 2], want, c.name);
  }
  // float32 stores hold 70000.
  const kept = storeData(
    (await runStageDirect(ingest, { source: join(dir, 'big-float.parquet'), dtype: 'float32' })).outDir,
  );
  assert.equal(kept[5 * 3 + 2], 70000);
});

test('a 0-row row group (pyarrow writes one for an empty table) is accepted', async () => {
  // test/fixtures/empty-row-group.parquet: pyarrow 25, a row group of 3 rows (fixed_size_list<halffloat>[4],
  // values 0..11) and a row group of 0 rows; empty-table.parquet: only a 0-row row group.
  const run = await runStageDirect(ingest, { source: join(FIXTURES, 'empty-row-group.parquet') });
  assert.equal(run.outputs.rows, 3);
  assert.deepEqual(
    [...storeData(run.outDir)],
    Array.from({ length: 12 }, (_, i) => encodeHalf(i)),
  );
  const folder = join(dir, 'with-empty');
  mkdirSync(folder);
  symlinkSync(join(FIXTURES, 'empty-row-group.parquet'), join(folder, 'a.parquet'));
  symlinkSync(join(FIXTURES, 'empty-table.parquet'), join(folder, 'b.parquet'));
  const both = await runStageDirect(ingest, { source: folder });
  assert.equal(both.outputs.rows, 3);
});

test('a hub cache snapshot (parquet files as symbolic links into blobs/) is found when given the folder', async () => {
  const cache = join(dir, 'hub-cache');
  mkdirSync(join(cache, 'blobs'), { recursive: true });
  mkdirSync(join(cache, 'snapshots/rev1/data'), { recursive: true });
  const d = 4;
  const half = Array.from({ length: 6 * d }, (_, i) => encodeHalf(i));
  const opts: FixtureOptions = {
    element: 'float16',
    fixedSize: true,
    compression: 'zstd',
    dictionary: true,
    rowGroupSize: 4,
    writerVersion: 2,
  };
  writeFixture(join(cache, 'blobs/aaa'), regularRows(half.slice(0, 3 * d), 3, d), opts);
  writeFixture(join(cache, 'blobs/bbb'), regularRows(half.slice(3 * d), 3, d), opts);
  symlinkSync('../../../blobs/aaa', join(cache, 'snapshots/rev1/data/train-0.parquet'));
  symlinkSync('../../../blobs/bbb', join(cache, 'snapshots/rev1/data/train-1.parquet'));
  const run = await runStageDirect(ingest, { source: join(cache, 'snapshots/rev1') });
  assert.equal(run.outputs.rows, 6);
  assert.deepEqual([...storeData(run.outDir)], half);
  symlinkSync('../../../blobs/missing', join(cache, 'snapshots/rev1/data/train-2.parquet'));
  assert.match(
    await ingestFails({ source: join(cache, 'snapshots/rev1') }),
    /train-2\.parquet: a symbolic link to a missing file/,
  );
});

test('byte-stream-split float and double columns take the typed path, value by value', async () => {
  for (const element of ['float', 'double'] as const) {
    const rows = 512;
    const d = 256;
    const values = Array.from({ length: rows * d }, (_, i) => Math.sin(i) * 100);
    const path = join(dir, `bss-${element}.parquet`);
    writeFixture(path, regularRows(values, rows, d), {
      element,
      fixedSize: true,
      compression: 'none',
      dictionary: false,
      encoding: 'BYTE_STREAM_SPLIT',
      rowGroupSize: 128,
    });
    const out = mkdtempSync(join(dir, 'bss-out-'));
    const started = performance.now();
    const result = await ingestParquet({ files: [path], column: 'activations', dtype: 'float32', outDir: out });
    const seconds = (performance.now() - started) / 1000;
    assert.deepEqual(result.decoders, { typed: 4, generic: 0 });
    const buf = readFileSync(join(out, 'data.bin'));
    const got = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    assert.deepEqual(got, Float32Array.from(values));
    console.log(
      `# byte-stream-split ${element}: ${((rows * d) / seconds / 1e6).toFixed(1)}M values/s (under load, incl. hashing and writing)`,
    );
  }
});
