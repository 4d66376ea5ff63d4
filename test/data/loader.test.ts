import { test } from 'node:test';
import assert from 'node:assert/strict';
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BatchLoader, SMALL_BATCH_VALUES, openStore } from '../../src/data/loader.js';
import { decodeHalf, encodeHalf, float16Table } from '../../src/data/float16.js';
import { halfRowsToFloatSimd, simdKernel } from '../../src/data/loader/float16-simd.js';
import { rowIdStore, rowIds, writeTestStore } from './store-fixture.js';

const D = 8;

async function take(loader: BatchLoader, n: number): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < n; i++) out.push(rowIds(await loader.next(), loader.d, loader.scale));
  return out;
}

test('float16 decoding is exact: special values, subnormals, infinities, NaN', () => {
  const t = float16Table();
  assert.equal(t[0x0000], 0);
  assert.ok(Object.is(t[0x8000], -0));
  assert.equal(t[0x0001], 2 ** -24); // smallest subnormal
  assert.equal(t[0x03ff], 1023 * 2 ** -24); // largest subnormal
  assert.equal(t[0x0400], 2 ** -14); // smallest normal
  assert.equal(t[0x3c00], 1);
  assert.equal(t[0x3c01], 1 + 2 ** -10);
  assert.equal(t[0xc000], -2);
  assert.equal(t[0x7bff], 65504);
  assert.equal(t[0x7c00], Infinity);
  assert.equal(t[0xfc00], -Infinity);
  assert.ok(Number.isNaN(t[0x7e00]) && Number.isNaN(t[0xfc01]));
  // Every non-NaN pattern round-trips through the encoder, and the table equals the scalar decoder.
  for (let h = 0; h < 65536; h++) {
    assert.equal(t[h], Math.fround(decodeHalf(h)));
    if (!Number.isNaN(t[h])) assert.equal(encodeHalf(t[h]), h, `pattern ${h.toString(16)}`);
  }
});

test('float16 encoding rounds to nearest, ties to even, and saturates to infinity', () => {
  assert.equal(encodeHalf(1 + 2 ** -11), 0x3c00); // tie -> even (down)
  assert.equal(encodeHalf(1 + 3 * 2 ** -11), 0x3c02); // tie -> even (up)
  assert.equal(encodeHalf(1 + 2 ** -11 + 2 ** -20), 0x3c01); // above the tie
  assert.equal(encodeHalf(2 ** -25), 0x0000); // half the smallest subnormal: tie -> even (zero)
  assert.equal(encodeHalf(1.5 * 2 ** -25), 0x0001);
  assert.equal(encodeHalf(65520), 0x7c00); // rounds past the largest finite half
  assert.equal(encodeHalf(65519), 0x7bff);
  assert.equal(encodeHalf(-1e9), 0xfc00);
  assert.ok(Number.isNaN(float16Table()[encodeHalf(NaN)]));
});

test('the SIMD float16 kernel equals the table bit for bit on all 65536 patterns, scaled or not', () => {
  assert.ok(simdKernel(), 'Node 20 has WebAssembly SIMD');
  const t = float16Table();
  const halves = Uint16Array.from({ length: 65536 + 3 }, (_, i) => (i - 3) & 0xffff);
  const starts = Array.from({ length: 65536 / 256 }, (_, r) => 3 + r * 256); // unaligned rows
  for (const scale of [1, 1 / 3.4, -7.25e-3, 1e30]) {
    const out = new Float32Array(65536);
    assert.equal(halfRowsToFloatSimd(halves, starts, 256, out, scale), true);
    for (let h = 0; h < 65536; h++) {
      const want = Math.fround(t[h] * scale);
      if (!(Object.is(out[h], want) || (Number.isNaN(want) && Number.isNaN(out[h])))) {
        assert.fail(`pattern ${h.toString(16)} scale ${scale}: ${out[h]} != ${want}`);
      }
    }
  }
  assert.equal(
    halfRowsToFloatSimd(halves, [0], 12, new Float32Array(12), 1),
    false,
    'd not a multiple of 8: table path',
  );
});

test('a float16 store is read back exactly, including subnormals, inf and nan', () => {
  const special = [
    0,
    -0,
    2 ** -24,
    1023 * 2 ** -24,
    2 ** -14,
    1,
    -2,
    65504,
    Infinity,
    -Infinity,
    NaN,
    0.333251953125,
    -1e-7,
    3,
    4,
    5,
  ];
  const dir = writeTestStore(Float32Array.from(special), D);
  for (const [maxInMemoryBytes, simd] of [
    [1 << 20, true],
    [0, true],
    [0, false],
  ] as const) {
    const store = openStore(dir, { maxInMemoryBytes, simd });
    const got = store.readRows(0, 2);
    const want = special.map((v) => (v === -1e-7 ? -2 * 2 ** -24 : v)); // -1e-7 rounds to the subnormal -2^-23
    assert.deepEqual(Array.from(got), want);
    store.close();
  }
});

test('same seed gives the same batches, a different seed different ones; an epoch is a permutation', async () => {
  const dir = rowIdStore(100, D);
  const store = openStore(dir);
  const opts = { batchSize: 10, split: 'all' as const };
  const a = await take(new BatchLoader(store, { ...opts, seed: 7 }), 10);
  const b = await take(new BatchLoader(store, { ...opts, seed: 7 }), 10);
  const c = await take(new BatchLoader(store, { ...opts, seed: 8 }), 10);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
  assert.deepEqual(
    a.flat().sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.notDeepEqual(
    a.flat(),
    Array.from({ length: 100 }, (_, i) => i),
    'shuffled',
  );
  // The next epoch is another permutation, not a repeat.
  const loader = new BatchLoader(store, { ...opts, seed: 7 });
  const twoEpochs = (await take(loader, 20)).flat();
  assert.notDeepEqual(twoEpochs.slice(0, 100), twoEpochs.slice(100));
  assert.deepEqual(
    twoEpochs.slice(100).sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
});

test('shuffle: false delivers rows in order and wraps at the end of the split', async () => {
  const store = openStore(rowIdStore(25, D));
  const loader = new BatchLoader(store, { batchSize: 10, shuffle: false, split: 'train', evalRows: 5 });
  assert.deepEqual(await take(loader, 3), [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [10, 11, 12, 13, 14, 15, 16, 17, 18, 19],
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  ]);
  assert.deepEqual(loader.state(), { epoch: 1, position: 10, seed: 0, rows: 20, shuffle: false });
});

test('the eval split is the last evalRows rows and is disjoint from train', async () => {
  const store = openStore(rowIdStore(120, D));
  const train = (
    await take(new BatchLoader(store, { batchSize: 20, seed: 1, split: 'train', evalRows: 20 }), 5)
  ).flat();
  const evalIds = (
    await take(new BatchLoader(store, { batchSize: 20, seed: 1, split: 'eval', evalRows: 20 }), 1)
  ).flat();
  assert.deepEqual(
    [...new Set(train)].sort((x, y) => x - y),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.deepEqual(
    [...evalIds].sort((x, y) => x - y),
    Array.from({ length: 20 }, (_, i) => 100 + i),
  );
  assert.throws(() => new BatchLoader(store, { batchSize: 4, evalRows: 120 }), /leaves no training rows/);
  assert.throws(
    () => new BatchLoader(store, { batchSize: 4, split: 'eval', evalRows: 121 }),
    /fewer than evalRows=121/,
  );
});

test('scale multiplies every value', async () => {
  const values = Float32Array.from({ length: 4 * D }, (_, i) => (i % 7) - 3);
  for (const dtype of ['float16', 'float32'] as const) {
    const store = openStore(writeTestStore(values, D, dtype));
    const batch = await new BatchLoader(store, { batchSize: 4, shuffle: false, split: 'all', scale: 1 / 3.4 }).next();
    assert.deepEqual(
      Array.from(batch),
      Array.from(values, (v) => Math.fround(v * (1 / 3.4))),
    );
  }
});

test('state/restore continues exactly, also across an epoch boundary and from a fresh loader', async () => {
  const store = openStore(rowIdStore(50, D));
  const opts = { batchSize: 7, seed: 3, split: 'all' as const, prefetch: 3 };
  const first = new BatchLoader(store, opts);
  await take(first, 6); // 42 rows: the 8th batch crosses into epoch 1
  const state = JSON.parse(JSON.stringify(first.state()));
  const continuation = await take(first, 5);
  const resumed = new BatchLoader(store, opts);
  resumed.restore(state);
  assert.deepEqual(await take(resumed, 5), continuation);
  // Restoring on the same loader (prefetched reads dropped) also replays exactly.
  first.restore(state);
  assert.deepEqual(await take(first, 5), continuation);
  assert.throws(
    () => new BatchLoader(store, { ...opts, split: 'train', evalRows: 10 }).restore(state),
    /split of 50 rows/,
  );
});

test('prefetch depth, worker threads, SIMD/table and the file/memory read paths do not change what is delivered', async () => {
  const dir = rowIdStore(300, D);
  const opts = { batchSize: 32, seed: 5, evalRows: 44, scale: 0.5 };
  const reference = await take(new BatchLoader(openStore(dir), { ...opts, prefetch: 0, workers: 0 }), 12);
  for (const prefetch of [1, 4]) {
    for (const workers of [0, 1, 2]) {
      for (const maxInMemoryBytes of [1 << 20, 0]) {
        const store = openStore(dir, { maxInMemoryBytes, simd: workers !== 2 });
        assert.equal(store.inMemory, maxInMemoryBytes > 0);
        const loader = new BatchLoader(store, { ...opts, prefetch, workers });
        assert.deepEqual(
          await take(loader, 12),
          reference,
          `prefetch ${prefetch} workers ${workers} in memory ${store.inMemory}`,
        );
        loader.close();
        store.close();
      }
    }
  }
});

test('by default a small store with small batches is assembled on the calling thread, a large batch in workers', async () => {
  const dir = rowIdStore(300, D);
  const small = new BatchLoader(openStore(dir), { batchSize: 32, split: 'all' });
  assert.equal(small.assembly, 'caller', 'a worker start and a round trip per batch cost more than 32 x 8 values');
  assert.equal((await small.next()).length, 32 * D);
  small.close();
  const big = new BatchLoader(openStore(dir), { batchSize: (SMALL_BATCH_VALUES / D) * 2, split: 'all' });
  assert.equal(big.assembly, 'worker');
  big.close();
  const asked = new BatchLoader(openStore(dir), { batchSize: 32, split: 'all', workers: 1 });
  assert.equal(asked.assembly, 'worker', 'an explicit workers option wins');
  asked.close();
  const onDisk = new BatchLoader(openStore(dir, { maxInMemoryBytes: 0 }), { batchSize: 32, split: 'all' });
  assert.equal(onDisk.assembly, 'caller', 'a small store read from its file: the conversion stays on the caller');
  onDisk.close();
});

test('a worker error reaches the caller with the file named; restore after prefetch drops stale batches', async () => {
  const dir = rowIdStore(40, D);
  const store = openStore(dir);
  const loader = new BatchLoader(store, { batchSize: 8, split: 'all', workers: 1, prefetch: 2 });
  const first = await take(loader, 1);
  const state = { epoch: 0, position: 0, seed: 0, rows: 40, shuffle: true };
  loader.restore(state);
  assert.deepEqual(await take(loader, 1), first);
  loader.close();
  truncateSync(join(dir, 'data.bin'), 8 * D * 2); // only 8 rows left: reads past them fail in the worker
  const broken = new BatchLoader(store, { batchSize: 8, split: 'all', workers: 1, prefetch: 0 });
  await assert.rejects(async () => {
    for (let i = 0; i < 5; i++) await broken.next();
  }, /data\.bin/);
  broken.close();
});

test('bad stores give clear errors naming the file', () => {
  const dir = rowIdStore(10, D);
  truncateSync(join(dir, 'data.bin'), 10 * D * 2 - 2);
  assert.throws(() => openStore(dir), /data\.bin has 158 bytes, store\.json says 10 rows x 8 float16 = 160/);
  writeFileSync(
    join(dir, 'store.json'),
    JSON.stringify({
      format: 'activation-store/1',
      rows: 10,
      d: 8,
      dtype: 'bfloat16',
      byteOrder: 'little',
      sources: [],
      column: 'x',
    }),
  );
  assert.throws(() => openStore(dir), /store\.json: field "dtype" must be "float16" or "float32" \(got "bfloat16"\)/);
  assert.throws(() => openStore(join(dir, 'nope')), /not an activation store: .*nope\/store\.json does not exist/);
});
