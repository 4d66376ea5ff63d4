/**
 * The ingest stage on parquet files written by an independent writer (parquet-wasm + apache-arrow,
 * test/ingest/arrow-writer.ts), compared value by value; and its errors on bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { util as arrowUtil } from 'apache-arrow';
import { parquetMetadata } from 'hyparquet';
import ingest from '../../src/stages/ingest.js';
import { writeHubLayoutParquet } from '../../src/data/parquet/write-hub-layout.js';
import { ingestParquet } from '../../src/data/parquet/ingest.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { dumpLayout, regularRows, writeFixture, type FixtureOptions } from './arrow-writer.js';

const dir = mkdtempSync(join(tmpdir(), 'ingest-test-'));

/** Deterministic pseudo-random generator (LCG), so fixtures are the same on every run. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Random finite float16 bit patterns, including subnormals, zeros and negatives. */
function randomHalfBits(n: number, seed: number): Uint16Array {
  const rand = lcg(seed);
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    let h: number;
    do h = Math.floor(rand() * 65536);
    while ((h & 0x7c00) === 0x7c00); // no Inf / NaN
    out[i] = h;
  }
  return out;
}

function randomFloats(n: number, seed: number): number[] {
  const rand = lcg(seed);
  return Array.from({ length: n }, () => (rand() - 0.5) * 10 ** Math.floor(rand() * 6 - 3));
}

function readStore(storeDir: string) {
  const header = JSON.parse(readFileSync(join(storeDir, 'store.json'), 'utf8'));
  const buf = readFileSync(join(storeDir, 'data.bin'));
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  const data = header.dtype === 'float16' ? new Uint16Array(bytes) : new Float32Array(bytes);
  return { header, data };
}

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

async function ingestRun(params: Record<string, unknown>) {
  const run = await runStageDirect(ingest, params);
  return { ...run, store: readStore(join(run.outDir, run.outputs.store as string)) };
}

/** Runs ingest expecting a failure; returns the error message and checks no store.json was written. */
async function ingestError(params: Record<string, unknown>): Promise<string> {
  const root = mkdtempSync(join(dir, 'fail-'));
  let message: string | undefined;
  try {
    await runStageDirect(ingest, params, { root });
  } catch (err) {
    message = (err as Error).message;
  }
  assert.ok(message !== undefined, `ingest of ${JSON.stringify(params)} should have failed`);
  assert.equal(existsSync(join(root, 'out', 'store', 'store.json')), false, 'no store.json after a failure');
  return message;
}

test('hub layout (float16 fixed_size_list, dictionary, zstd): exact float16 bits, value by value', async () => {
  const n = 200;
  const d = 24;
  const bits = randomHalfBits(n * d, 1);
  const path = join(dir, 'hub.parquet');
  writeFixture(path, regularRows(bits, n, d), {
    element: 'float16',
    fixedSize: true,
    compression: 'zstd',
    dictionary: true,
    rowGroupSize: 64,
    writerVersion: 2,
  });
  // the fixture has the claimed layout (only the data page version differs from pyarrow's v1)
  assert.deepEqual(dumpLayout(path), {
    schema: [
      { name: 'activations', repetition: 'OPTIONAL', logical: 'LIST', converted: 'LIST' },
      { name: 'list', repetition: 'REPEATED' },
      { name: 'element', type: 'FIXED_LEN_BYTE_ARRAY', type_length: 2, repetition: 'OPTIONAL', logical: 'FLOAT16' },
    ],
    codec: 'ZSTD',
    rowGroupRows: [64, 64, 64, 8],
    pages: ['DATA_PAGE_V2:RLE_DICTIONARY', 'DICTIONARY_PAGE:PLAIN'],
  });

  const run = await ingestRun({ source: path });
  assert.deepEqual(
    { rows: run.outputs.rows, d: run.outputs.d, dtype: run.outputs.dtype },
    { rows: n, d, dtype: 'float16' },
  );
  assert.equal(run.store.header.format, 'activation-store/1');
  assert.equal(run.store.header.byteOrder, 'little');
  assert.deepEqual(run.store.header.sources, [{ path: 'hub.parquet', rows: n, sha256: sha256(path) }]);
  assert.deepEqual(run.store.data, bits);
  assert.match(run.logs.join('\n'), /4 typed, 0 generic/);
  assert.ok(run.progress.some((p) => p.fraction === 1 && p.unit === 'rows'));

  const f32 = await ingestRun({ source: path, dtype: 'float32', d });
  const expected = Float32Array.from(bits, (h) => arrowUtil.uint16ToFloat64(h));
  assert.deepEqual(f32.store.data, expected);
});

const floatCases: Array<{ name: string; opts: Omit<FixtureOptions, 'rowGroupSize'>; decoder: RegExp }> = [
  {
    name: 'list<float> snappy dictionary (v1 pages)',
    opts: { element: 'float', fixedSize: false, compression: 'snappy', dictionary: true },
    decoder: / 0 generic/,
  },
  {
    name: 'list<double> gzip plain',
    opts: { element: 'double', fixedSize: false, compression: 'gzip', dictionary: false },
    decoder: / 0 generic/,
  },
  {
    name: 'list<float> uncompressed plain',
    opts: { element: 'float', fixedSize: false, compression: 'none', dictionary: false },
    decoder: / 0 generic/,
  },
  {
    name: 'fixed_size_list<double> zstd dictionary v2',
    opts: { element: 'double', fixedSize: true, compression: 'zstd', dictionary: true, writerVersion: 2 },
    decoder: / 0 generic/,
  },
  {
    name: 'list<float> BYTE_STREAM_SPLIT',
    opts: { element: 'float', fixedSize: false, compression: 'zstd', dictionary: false, encoding: 'BYTE_STREAM_SPLIT' },
    decoder: / 0 generic/,
  },
];

for (const c of floatCases) {
  test(`${c.name}: values match`, async () => {
    const n = 90;
    const d = 12;
    const values = randomFloats(n * d, 7);
    const path = join(dir, `${c.name.replace(/\W+/g, '_')}.parquet`);
    writeFixture(path, regularRows(values, n, d), { ...c.opts, rowGroupSize: 40 });
    const run = await ingestRun({ source: path, dtype: 'float32' });
    assert.equal(run.outputs.rows, n);
    assert.equal(run.outputs.d, d);
    assert.deepEqual(run.store.data, Float32Array.from(values));
    assert.match(run.logs.join('\n'), c.decoder);

    const half = await ingestRun({ source: path }); // default float16: rounded, as arrow rounds
    assert.deepEqual(
      half.store.data,
      Uint16Array.from(Float32Array.from(values), (v) => arrowUtil.float64ToUint16(v)),
    );
  });
}

test('a folder: all *.parquet under it, sorted by path, sources recorded', async () => {
  const folder = join(dir, 'folder');
  mkdirSync(join(folder, 'sub'), { recursive: true });
  const d = 8;
  const a = randomHalfBits(30 * d, 2);
  const b = randomHalfBits(50 * d, 3);
  const opts: FixtureOptions = {
    element: 'float16',
    fixedSize: true,
    compression: 'zstd',
    dictionary: true,
    rowGroupSize: 16,
    writerVersion: 2,
  };
  writeFixture(join(folder, 'sub', 'b.parquet'), regularRows(b, 50, d), opts);
  writeFixture(join(folder, 'a.parquet'), regularRows(a, 30, d), opts);
  writeFileSync(join(folder, 'notes.txt'), 'not parquet');
  const run = await ingestRun({ source: folder, d });
  assert.equal(run.outputs.rows, 80);
  assert.deepEqual(
    run.store.header.sources.map((s: any) => [s.path, s.rows]),
    [
      ['a.parquet', 30],
      ['sub/b.parquet', 50],
    ],
  );
  assert.deepEqual(run.store.data, new Uint16Array([...a, ...b]));
});

test('max_rows stops after that many rows (inside a row group)', async () => {
  const d = 10;
  const bits = randomHalfBits(100 * d, 4);
  const path = join(dir, 'max-rows.parquet');
  writeFixture(path, regularRows(bits, 100, d), {
    element: 'float16',
    fixedSize: true,
    compression: 'zstd',
    dictionary: true,
    rowGroupSize: 16,
    writerVersion: 2,
  });
  const run = await ingestRun({ source: path, max_rows: 37 });
  assert.equal(run.outputs.rows, 37);
  assert.equal(run.store.header.sources[0].rows, 37);
  assert.deepEqual(run.store.data, bits.subarray(0, 37 * d));
});

test('writeHubLayoutParquet (used by synthetic-activations) writes the hub layout that ingest reads back', async () => {
  const d = 16;
  const values = Float32Array.from(randomFloats(70 * d, 5));
  const path = join(dir, 'ours.parquet');
  const result = await writeHubLayoutParquet(path, values, d, { rowGroupSize: 32 });
  assert.deepEqual(result.rows, 70);
  assert.equal(result.rowGroups, 3);
  const layout = dumpLayout(path);
  assert.equal(layout.schema[2].logical, 'FLOAT16');
  assert.deepEqual(layout.rowGroupRows, [32, 32, 6]);
  assert.deepEqual(layout.pages, ['DATA_PAGE_V2:RLE_DICTIONARY', 'DICTIONARY_PAGE:PLAIN']);
  assert.equal(layout.codec, 'ZSTD');
  const run = await ingestRun({ source: path });
  assert.deepEqual(
    run.store.data,
    Uint16Array.from(values, (v) => arrowUtil.float64ToUint16(v)),
  );
});

// ---- bad input: clear errors naming the file (and row group), no store ----

function smallHubFile(name: string, rows = 64, d = 8): string {
  const path = join(dir, name);
  writeFixture(path, regularRows(randomHalfBits(rows * d, 6), rows, d), {
    element: 'float16',
    fixedSize: true,
    compression: 'zstd',
    dictionary: true,
    rowGroupSize: 16,
    writerVersion: 2,
  });
  return path;
}

test('a truncated file: error names the file', async () => {
  const path = smallHubFile('truncated.parquet');
  truncateSync(path, Math.floor(readFileSync(path).length / 2));
  const message = await ingestError({ source: path });
  assert.match(message, /truncated\.parquet/);
  assert.match(message, /not a readable parquet file/);
});

test('a corrupt column chunk: error names the file and the row group', async () => {
  const path = smallHubFile('corrupt.parquet');
  const bytes = readFileSync(path);
  const md = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const meta = md.row_groups[2].columns[0].meta_data!;
  const start = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
  bytes.fill(0xff, start, start + Number(meta.total_compressed_size)); // wipe row group 2's chunk
  writeFileSync(path, bytes);
  const message = await ingestError({ source: path });
  assert.match(message, /corrupt\.parquet: row group 2 of 4 \(rows 32\.\.47\)/);
});

test('a missing column: error names the file and lists the columns', async () => {
  const path = join(dir, 'other-column.parquet');
  writeFixture(path, regularRows(randomFloats(20, 8), 5, 4), {
    element: 'float',
    fixedSize: false,
    compression: 'none',
    dictionary: false,
    rowGroupSize: 8,
    column: 'embeddings',
  });
  const message = await ingestError({ source: path });
  assert.match(message, /other-column\.parquet: column "activations" not found \(columns: embeddings\)/);
});

test('rows of the wrong length: error names the file, row group and row', async () => {
  const d = 16;
  const lengths = new Array<number>(60).fill(d);
  lengths[45] = d - 1;
  const path = join(dir, 'ragged.parquet');
  const values = randomFloats(
    lengths.reduce((s, x) => s + x, 0),
    9,
  );
  writeFixture(
    path,
    { values, lengths },
    { element: 'float', fixedSize: false, compression: 'snappy', dictionary: true, rowGroupSize: 20 },
  );
  const message = await ingestError({ source: path });
  assert.match(message, /ragged\.parquet: row group 2 of 3 \(rows 40\.\.59\): row 45 has 15 values, expected d=16/);

  const wrongD = await ingestError({ source: smallHubFile('wrong-d.parquet'), d: 9 });
  assert.match(wrongD, /wrong-d\.parquet: row group 0 of 4 \(rows 0\.\.15\): row 0 has 8 values, expected d=9/);
});

test('an empty list row is refused', async () => {
  const lengths = [4, 4, 0, 4];
  const path = join(dir, 'empty-row.parquet');
  writeFixture(
    path,
    { values: randomFloats(12, 10), lengths },
    { element: 'float', fixedSize: false, compression: 'none', dictionary: false, rowGroupSize: 8 },
  );
  const message = await ingestError({ source: path });
  assert.match(message, /empty-row\.parquet: row group 0 of 1 .*row 2 has a null or empty list/);
});

test('a source folder without parquet files, or a missing source', async () => {
  const empty = join(dir, 'empty');
  mkdirSync(empty);
  assert.match(await ingestError({ source: empty }), /no \*\.parquet files under .*empty/);
  assert.match(await ingestError({ source: join(dir, 'nope') }), /ingest source not found: .*nope/);
});

test('random byte corruption: every run ends, with a store or an error naming the file', async () => {
  const path = smallHubFile('fuzz-source.parquet');
  const original = readFileSync(path);
  const rand = lcg(99);
  const target = join(dir, 'fuzzed.parquet');
  let failures = 0;
  for (let trial = 0; trial < 80; trial++) {
    const bytes = Buffer.from(original);
    for (let k = 0; k < 3; k++) bytes[Math.floor(rand() * (bytes.length - 8))] = Math.floor(rand() * 256);
    writeFileSync(target, bytes);
    const outDir = mkdtempSync(join(dir, 'fuzz-out-'));
    try {
      await ingestParquet({ files: [target], column: 'activations', dtype: 'float16', outDir });
    } catch (err) {
      failures++;
      assert.match((err as Error).message, /fuzzed\.parquet/, `trial ${trial}`);
      assert.equal(existsSync(join(outDir, 'store.json')), false);
    }
  }
  assert.ok(failures > 20, `most corruptions are detected (${failures}/80)`);
});
