/**
 * Loader throughput: rows/s of d=2048 float16 rows delivered as shuffled float32 batches of 1024,
 * through both read paths (in-memory and positional file reads), beside a numpy peer doing the
 * same work (memmap, seeded permutation, fancy-indexed gather, astype(float32) * scale).
 *
 *   node dist/bench/loader.js [rows=120000] [batches=100]
 * Target (issue 3): >= 50,000 rows/s. Run under `flock /tmp/bench.lock` on the shared machine.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, openSync, closeSync, writeSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BatchLoader, openStore, type OpenStoreOptions } from '../src/data/loader.js';
import { Rng } from '../src/data/loader/rng.js';

const D = 2048;
const BATCH = 1024;

/** Writes a float16 store of random finite values (|x| in ~[2^-7, 2)), chunk by chunk. */
export function writeBenchStore(rows: number, d = D): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const fd = openSync(join(dir, 'data.bin'), 'w');
  const rng = new Rng(1);
  const chunkRows = 4096;
  const chunk = new Uint16Array(chunkRows * d);
  for (let r = 0; r < rows; r += chunkRows) {
    const n = Math.min(chunkRows, rows - r) * d;
    for (let i = 0; i < n; i++) chunk[i] = (rng.nextU32() & 0x83ff) | 0x2000 | ((i & 3) << 11);
    writeSync(fd, chunk, 0, n * 2);
  }
  closeSync(fd);
  const header = {
    format: 'activation-store/1',
    rows,
    d,
    dtype: 'float16',
    byteOrder: 'little',
    sources: [],
    column: 'activations',
  };
  writeFileSync(join(dir, 'store.json'), JSON.stringify(header));
  return dir;
}

/** Rows per second delivered by BatchLoader over `batches` batches (after one warm-up batch). */
export async function estimateRowsPerSecond(
  dir: string,
  opts: {
    batches?: number;
    batchSize?: number;
    prefetch?: number;
    workers?: number;
    store?: OpenStoreOptions;
    stepMs?: number;
  } = {},
): Promise<number> {
  const batches = opts.batches ?? 100;
  const batchSize = opts.batchSize ?? BATCH;
  const store = openStore(dir, opts.store);
  const loader = new BatchLoader(store, {
    batchSize,
    seed: 0,
    scale: 1 / 3.4,
    evalRows: 8192,
    prefetch: opts.prefetch ?? 2,
    workers: opts.workers ?? 1,
  });
  await loader.next(); // warm-up: permutation, in-memory load, JIT
  const t0 = performance.now();
  let checksum = 0;
  for (let b = 0; b < batches; b++) {
    const batch = await loader.next();
    checksum += batch[b];
    if (opts.stepMs) busyWait(opts.stepMs); // a synchronous "training step" the reads should overlap
  }
  const seconds = (performance.now() - t0) / 1000;
  loader.close();
  store.close();
  if (Number.isNaN(checksum)) throw new Error('bench: NaN in batches');
  return (batches * batchSize) / seconds;
}

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

const NUMPY_PEER = `
import sys, time, numpy as np
d, rows, batches, bs = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), 1024
data = np.memmap(sys.argv[1] + '/data.bin', dtype=np.float16, mode='r', shape=(rows, d))
train = rows - 8192
perm = np.random.default_rng(0).permutation(train)
def batch(b):
    idx = np.sort(perm[b * bs:(b + 1) * bs])
    return data[idx].astype(np.float32) * np.float32(1 / 3.4)
batch(0)
t0 = time.perf_counter()
for b in range(1, batches + 1): batch(b)
print(batches * bs / (time.perf_counter() - t0))
`;

function numpyPeer(dir: string, rows: number, batches: number): number | string {
  try {
    execFileSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' });
  } catch {
    return 'no peer (python3 with numpy not found)';
  }
  return Number(
    execFileSync('python3', ['-c', NUMPY_PEER, dir, String(D), String(rows), String(batches)], {
      encoding: 'utf8',
    }).trim(),
  );
}

async function main(): Promise<void> {
  const rows = Number(process.argv[2] ?? 120_000);
  const batches = Number(process.argv[3] ?? 100);
  console.log(
    `store: ${rows} rows x d=${D} float16 (${((rows * D * 2) / 2 ** 20).toFixed(0)} MiB), batches of ${BATCH}, shuffled, scaled`,
  );
  const dir = writeBenchStore(rows);
  try {
    const fmt = (x: number) => `${Math.round(x).toLocaleString('en-US')} rows/s`;
    const memory = { maxInMemoryBytes: 2 ** 31 - 1 };
    const file = { maxInMemoryBytes: 0 };
    const runs: Array<[string, Parameters<typeof estimateRowsPerSecond>[1]]> = [
      ['main thread, in memory, table      ', { workers: 0, store: { ...memory, simd: false } }],
      ['main thread, in memory, SIMD       ', { workers: 0, store: memory }],
      ['main thread, async file reads      ', { workers: 0, store: file }],
      ['1 worker thread, table             ', { workers: 1, store: { simd: false } }],
      ['1 worker thread (pread + SIMD)     ', { workers: 1 }],
      ['2 worker threads                   ', { workers: 2 }],
      ['main thread + 10 ms sync step/batch', { workers: 0, store: file, stepMs: 10 }],
      ['1 worker    + 10 ms sync step/batch', { workers: 1, stepMs: 10 }],
    ];
    for (const [label, opts] of runs)
      console.log(`ours, ${label}: ${fmt(await estimateRowsPerSecond(dir, { batches, ...opts }))}`);
    console.log('(with a 10 ms step, 102,400 rows/s is the ceiling: full overlap)');
    const peer = numpyPeer(dir, rows, batches);
    console.log(
      `numpy peer (memmap, sorted fancy index, astype f32 * scale): ${typeof peer === 'number' ? fmt(peer) : peer}`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
