/**
 * Training-step throughput of our engines (samples/s) beside the PyTorch peer (the seed's step
 * as a script, which is not part of this repository: PEER_SCRIPT=path, else looked for as
 * shared/bench/seed_sae.py beside the checkout), same shapes, same threads, interleaved:
 * for each shape and round, each engine present at each thread count, then the peer at
 * that thread count. Also prints the torch version and this machine's sgemm GFLOP/s
 * (numpy, float32, one 2048 x 2048 x 2048 product per call), so that a figure can be read as
 * a fraction of what the cores can do (one sample costs 12 d_in d_sae FLOPs).
 *
 *   node dist/bench/train.js [--engines native,wasm,cpu] [--threads 1,2] [--seconds 3] [--rounds 2]
 *                            [--shapes 512x4096x1024,2048x16384x1024,2048x16384x4096]
 *
 * The peer needs a python with torch (PYTHON=..., else python3; Debian: apt-get install
 * python3-torch); it is skipped with a message otherwise. Run on a quiet machine: every
 * figure is wall-clock, and two-thread torch collapses under any other load.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseEngine } from '../src/sae/backend.js';
import type { EngineName, SaeEngine } from '../src/sae/engine.js';
import { initialWeights } from '../src/sae/jumprelu.js';
import { estimateTrainingBytes, memoryLimit, WASM_HEAP_BYTES } from '../src/sae/memory.js';
import { mulberry32 } from '../src/random.js';

const DEFAULT_SHAPES = '512x4096x1024,2048x16384x1024,2048x16384x4096';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Steps of random batches for `seconds` (after two warm-up steps); samples/s. */
async function ours(name: EngineName, threads: number, dIn: number, dSae: number, B: number, seconds: number) {
  const choice = await chooseEngine(name, threads);
  const need = estimateTrainingBytes(name, { dIn, dSae, batch: B, threads });
  if (need.total > memoryLimit() || (need.perHeap ?? 0) > WASM_HEAP_BYTES)
    return { skipped: 'estimated memory over the limit' };
  const cfg = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 };
  const engine: SaeEngine = await choice.create({
    cfg,
    init: { weights: initialWeights({ dIn, dSae }, 0.001, mulberry32(0)) },
  });
  const rng = mulberry32(1);
  const batches = Array.from({ length: 4 }, () => new Float32Array(B * dIn).map(() => rng() - 0.5));
  try {
    await engine.trainStep(batches[0], B, 4e-4, 7e-5);
    await engine.trainStep(batches[1], B, 4e-4, 7e-5);
    let steps = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000 || steps < 3)
      await engine.trainStep(batches[steps++ % 4], B, 4e-4, 7e-5);
    return { samplesPerS: (B * steps) / ((performance.now() - t0) / 1000), device: engine.info.device };
  } finally {
    await engine.dispose();
  }
}

function findTorchPython(): string | null {
  for (const py of [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[]) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

function python(py: string, code: string): string {
  const r = spawnSync(py, ['-c', code], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `error: ${(r.stderr || '').trim().split('\n').pop()}`;
}

function peer(
  py: string,
  script: string,
  dIn: number,
  dSae: number,
  B: number,
  threads: number,
  expectedRate: number,
  seconds: number,
) {
  const steps = Math.max(3, Math.round((seconds * expectedRate) / B));
  const r = spawnSync(py, [script, String(dIn), String(dSae), String(B), String(steps), String(threads)], {
    encoding: 'utf8',
  });
  const m = /([\d.]+) samples\/s/.exec(r.stdout);
  if (r.status !== 0 || !m) return { error: (r.stderr || r.stdout).trim().split('\n').pop() };
  return { samplesPerS: Number(m[1]) };
}

const SGEMM = `import numpy as np, time
a = np.random.rand(2048, 2048).astype(np.float32); b = a.copy(); a @ b
n = 0; t0 = time.perf_counter()
while time.perf_counter() - t0 < 2: a @ b; n += 1
print(f"{2 * 2048**3 * n / (time.perf_counter() - t0) / 1e9:.0f}")`;

async function main() {
  const seconds = Number(arg('seconds', '3'));
  const rounds = Number(arg('rounds', '2'));
  const threadCounts = arg('threads', '1,2').split(',').map(Number);
  const shapes = arg('shapes', DEFAULT_SHAPES)
    .split(',')
    .map((s) => s.split('x').map(Number));
  const wanted = arg('engines', 'cuda,native,wasm').split(',') as EngineName[];
  const engines: EngineName[] = [];
  for (const e of wanted) {
    try {
      await chooseEngine(e, 1);
      engines.push(e);
    } catch (err) {
      console.log(`engine ${e} skipped: ${(err as Error).message}`);
    }
  }
  const here = dirname(fileURLToPath(import.meta.url));
  const script = process.env.PEER_SCRIPT ?? [resolve(here, '../../../shared/bench/seed_sae.py')].find(existsSync);
  const py = findTorchPython();
  if (!py) console.log('peer skipped: no python with torch (set PYTHON=...; Debian: apt-get install python3-torch)');
  else if (!script) console.log('peer skipped: seed_sae.py not found (set PEER_SCRIPT=...)');
  else console.log(`peer: ${py} ${script}, torch ${python(py, 'import torch; print(torch.__version__)')}`);
  const numpyPy = py ?? 'python3';
  const sgemm = Number(python(numpyPy, SGEMM));
  console.log(`sgemm (numpy, all cores): ${Number.isFinite(sgemm) ? `${sgemm} GFLOP/s` : 'unknown'}`);
  console.log(
    ['d_in', 'd_sae', 'batch', 'engine', 'thr', 'ours', 'peer', 'ratio', 'GFLOP/s', '%sgemm']
      .map((h) => h.padStart(7))
      .join(' ') + '   (samples/s; ratio = ours / peer at the same threads)',
  );
  for (const [dIn, dSae, B] of shapes) {
    for (let round = 0; round < rounds; round++) {
      for (const threads of threadCounts) {
        let expected = 1000;
        const rows: string[][] = [];
        for (const e of engines) {
          if (e === 'cuda' && threads > 1) continue;
          const o = await ours(e, threads, dIn, dSae, B, seconds);
          const rate = 'samplesPerS' in o ? o.samplesPerS! : null;
          if (rate) expected = rate;
          const gflops = rate ? (12 * dIn * dSae * rate) / 1e9 : null;
          rows.push([
            String(dIn),
            String(dSae),
            String(B),
            e,
            String(threads),
            rate ? rate.toFixed(0) : 'skip',
            '',
            '',
            gflops ? gflops.toFixed(0) : '-',
            gflops && sgemm ? `${((100 * gflops) / sgemm).toFixed(0)}%` : '-',
          ]);
        }
        const p = py && script ? peer(py, script, dIn, dSae, B, threads, expected, seconds) : null;
        const peerRate = p && 'samplesPerS' in p ? p.samplesPerS! : null;
        for (const r of rows) {
          r[6] = peerRate !== null ? peerRate.toFixed(0) : p ? 'error' : 'skip';
          r[7] = peerRate !== null && Number(r[5]) ? `${(Number(r[5]) / peerRate).toFixed(2)}x` : '-';
          console.log(r.map((c) => c.padStart(7)).join(' '));
        }
        if (p && 'error' in p) console.log(`  peer error: ${p.error}`);
      }
    }
  }
}

await main();
