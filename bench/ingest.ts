/**
 * Ingest benchmark: our typed-array parquet path vs parquet-wasm, same file, same run.
 *
 *   node dist/bench/ingest.js [--gb 2,0.25] [--dir /tmp/ingest-bench] [--generate-only]
 *
 * For each size, generates (once, cached in --dir) a parquet file in the hub layout
 * (fixed_size_list<halffloat>[2048], dictionary, zstd, 8192-row groups) with Gaussian-like
 * float16 activations, then runs, each in its own child process so that peak RSS is its own:
 *   - ours:         the full ingest (decode + validate + write the float16 store + sha256)
 *   - ours-decode:  our reader only (decoded row groups are dropped)
 *   - parquet-wasm: ParquetFile row group by row group, materialised in JS via Arrow IPC
 * and prints values/s, MB/s and peak RSS of each, and the ratio. Two sizes show whether peak
 * memory depends on the file size or only on the row group size.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openAsBlob, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const D = 2048;
const ROW_GROUP = 8192;

interface Measure {
  name: string;
  seconds: number;
  values: number;
  bytes: number;
  maxRssMiB: number;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Float16 bit patterns of N(0, 1) samples (with a few heavy-tailed dims), drawn by table lookup. */
function activationSampler(seed: number): (out: Uint16Array) => void {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  // 65536 Gaussian samples as float16: a realistic number of distinct values for the dictionary
  const table = new Uint16Array(65536);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < table.length; i++) {
    const u = (next() + 1) / 2 ** 32;
    const v = (next() + 1) / 2 ** 32;
    f32[0] = 0.3 * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    const x = u32[0];
    // float32 -> float16 by truncation (fine for synthetic data)
    const e = ((x >>> 23) & 0xff) - 112;
    table[i] = ((x >>> 16) & 0x8000) | (e <= 0 ? 0 : e >= 31 ? 0x7bff : (e << 10) | ((x >>> 13) & 0x3ff));
  }
  return (out) => {
    for (let i = 0; i < out.length; i++) out[i] = table[next() & 0xffff];
    // heavy-tailed outlier dimensions, as in real residual/MLP activations
    for (let r = 0; r < out.length; r += D) out[r + 7] = table[next() & 0xffff] ^ 0x1000;
  };
}

async function generate(path: string, rows: number): Promise<void> {
  const { writeHubLayoutParquetStream } = await import('../src/data/parquet/write-hub-layout.js');
  const sample = activationSampler(12345);
  const started = performance.now();
  async function* chunks() {
    for (let done = 0; done < rows; done += ROW_GROUP) {
      const n = Math.min(ROW_GROUP, rows - done);
      const chunk = new Uint16Array(n * D);
      sample(chunk);
      yield chunk;
    }
  }
  const r = await writeHubLayoutParquetStream(path, chunks(), D, { rowGroupSize: ROW_GROUP });
  const s = (performance.now() - started) / 1000;
  console.log(
    `generated ${path}: ${r.rows} rows, ${r.rowGroups} row groups, ${(r.bytes / 1e9).toFixed(2)} GB in ${s.toFixed(0)} s`,
  );
}

// ---- children: one measurement each, printed as JSON on the last line ----

async function childOurs(file: string, out: string): Promise<Omit<Measure, 'name' | 'maxRssMiB'>> {
  const { ingestParquet } = await import('../src/data/parquet/ingest.js');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  const r = await ingestParquet({ files: [file], column: 'activations', dtype: 'float16', outDir: out });
  rmSync(out, { recursive: true, force: true });
  return { seconds: r.seconds, values: r.values, bytes: statSync(file).size };
}

async function childOursDecode(file: string): Promise<Omit<Measure, 'name' | 'maxRssMiB'>> {
  const { ParquetColumnFile } = await import('../src/data/parquet/reader.js');
  const started = performance.now();
  const f = await ParquetColumnFile.open(file, 'activations');
  let values = 0;
  let d: number | undefined;
  for (let g = 0; g < f.rowGroupCount; g++) {
    const group = await f.readRowGroup(g, d);
    d = group.d;
    values += group.values.length;
  }
  await f.close();
  return { seconds: (performance.now() - started) / 1000, values, bytes: statSync(file).size };
}

async function childParquetWasm(file: string): Promise<Omit<Measure, 'name' | 'maxRssMiB'>> {
  const pw = await import('parquet-wasm');
  const arrow = await import('apache-arrow');
  const started = performance.now();
  const pf = await pw.ParquetFile.fromFile(await openAsBlob(file));
  const groups = pf.metadata().numRowGroups();
  let values = 0;
  let checksum = 0;
  for (let g = 0; g < groups; g++) {
    const wasmTable = await pf.read({ rowGroups: [g], batchSize: ROW_GROUP });
    const table = arrow.tableFromIPC(wasmTable.intoIPCStream());
    for (const batch of table.batches) {
      const half = batch.getChildAt(0)!.data[0].children[0].values as Uint16Array;
      values += half.length;
      checksum ^= half[half.length - 1]; // touch the data
    }
  }
  if (checksum < 0) console.log(checksum);
  return { seconds: (performance.now() - started) / 1000, values, bytes: statSync(file).size };
}

async function runChild(mode: string, file: string, out: string): Promise<void> {
  const r =
    mode === 'ours'
      ? await childOurs(file, out)
      : mode === 'ours-decode'
        ? await childOursDecode(file)
        : await childParquetWasm(file);
  const maxRssMiB = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ ...r, maxRssMiB }));
}

function measure(name: string, file: string, out: string): Measure {
  const self = fileURLToPath(import.meta.url);
  const stdout = execFileSync(process.execPath, [self, '--child', name, '--file', file, '--out', out], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  const last = stdout.trim().split('\n').at(-1)!;
  return { name, ...JSON.parse(last) };
}

function show(m: Measure): string {
  const mvs = m.values / m.seconds / 1e6;
  const mbs = m.bytes / m.seconds / 1e6;
  return (
    `${m.name.padEnd(13)} ${m.seconds.toFixed(1).padStart(7)} s ${mvs.toFixed(1).padStart(7)}M ` +
    `values/s ${mbs.toFixed(0).padStart(5)} MB/s   peak RSS ${m.maxRssMiB.toFixed(0).padStart(5)} MiB`
  );
}

async function main(): Promise<void> {
  const child = process.argv.indexOf('--child');
  if (child >= 0) return runChild(process.argv[child + 1], arg('file', ''), arg('out', ''));

  const dir = arg('dir', '/tmp/ingest-bench');
  mkdirSync(dir, { recursive: true });
  const sizes = arg('gb', '2,0.25').split(',').map(Number);
  console.log(
    `ingest benchmark: d=${D}, ${ROW_GROUP}-row groups, float16 fixed_size_list, dictionary, zstd; node ${process.version}`,
  );
  for (const gb of sizes) {
    // ~1.76 bytes per value after dictionary + zstd on this Gaussian-like float16 data
    const rows = Math.ceil((gb * 1e9) / (D * 1.76) / ROW_GROUP) * ROW_GROUP;
    const file = join(dir, `hub-${rows}.parquet`);
    if (!existsSync(file)) await generate(file, rows);
    if (process.argv.includes('--generate-only')) continue;
    const size = statSync(file).size;
    console.log(`\nfile ${file}: ${(size / 1e9).toFixed(2)} GB, ${rows} rows, ${rows * D} values`);
    const results = ['ours', 'ours-decode', 'parquet-wasm'].map((name) => measure(name, file, join(dir, 'store')));
    for (const m of results) console.log(show(m));
    const rate = (m: Measure) => m.values / m.seconds;
    const [ours, decode, wasm] = results;
    console.log(
      `ratio ours / parquet-wasm: ${(rate(ours) / rate(wasm)).toFixed(2)}x (full ingest), ` +
        `${(rate(decode) / rate(wasm)).toFixed(2)}x (decode only)`,
    );
  }
}

await main();
