/**
 * Training-step throughput of our JumpReLU SAE (samples/s) beside the PyTorch peer
 * (../shared/bench/seed_sae.py: the seed's step, same shapes, same run).
 *
 *   node dist/bench/train.js [--backend wasm|cpu|tensorflow|auto] [--workers 2] [--seconds 3] [--shapes 512x4096x1024,64x256x1024]
 *
 * Columns: ours on one thread (JumpReluSae), ours with the features split over --workers
 * worker threads (ParallelSae; default: the number of cores), the peer, and both ratios.
 *
 * The peer needs a python with torch (PYTHON=..., else python3, else /usr/bin/python3); it is
 * skipped with a message if none imports torch. PEER_THREADS (default: all cores) is passed to it.
 * Run on a quiet machine: both figures are wall-clock.
 */
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { selectBackend, type BackendName } from '../src/sae/backend.js';
import { JumpReluSae, initialWeights } from '../src/sae/jumprelu.js';
import { mulberry32 } from '../src/random.js';
import { ParallelSae } from '../src/sae/parallel.js';

const DEFAULT_SHAPES = '512x4096x1024,64x256x1024,64x512x1024,64x1024x1024,64x1024x512';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

async function ours(backend: BackendName, dIn: number, dSae: number, B: number, seconds: number) {
  const { tf, name } = await selectBackend(backend);
  const rng = mulberry32(0);
  const sae = new JumpReluSae(tf, { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 }, initialWeights({ dIn, dSae }, 0.001, rng));
  const batches = Array.from({ length: 8 }, () => tf.randomNormal([B, dIn]));
  sae.trainStep(batches[0], 4e-4, 7e-5);
  sae.trainStep(batches[1], 4e-4, 7e-5);
  let steps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || steps < 3) sae.trainStep(batches[steps++ % 8], 4e-4, 7e-5);
  const dt = (performance.now() - t0) / 1000 / steps;
  batches.forEach((b) => b.dispose());
  sae.dispose();
  return { name, samplesPerS: B / dt, msPerStep: 1000 * dt };
}

async function oursParallel(backend: 'wasm' | 'cpu', workers: number, dIn: number, dSae: number, B: number, seconds: number) {
  const cfg = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 };
  const sae = await ParallelSae.create(workers, backend, cfg, initialWeights({ dIn, dSae }, 0.001, mulberry32(0)));
  const rng = mulberry32(1);
  const batches = Array.from({ length: 8 }, () => new Float32Array(B * dIn).map(() => rng() - 0.5));
  await sae.trainStep(batches[0], B, 4e-4, 7e-5);
  await sae.trainStep(batches[1], B, 4e-4, 7e-5);
  let steps = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000 || steps < 3) await sae.trainStep(batches[steps++ % 8], B, 4e-4, 7e-5);
  const dt = (performance.now() - t0) / 1000 / steps;
  await sae.dispose();
  return { samplesPerS: B / dt };
}

function findTorchPython(): string | null {
  for (const py of [process.env.PYTHON, 'python3', '/usr/bin/python3'].filter(Boolean) as string[]) {
    if (spawnSync(py, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return py;
  }
  return null;
}

function peer(py: string, script: string, dIn: number, dSae: number, B: number, expectedRate: number, seconds: number) {
  const steps = Math.max(3, Math.round((seconds * expectedRate) / B));
  const threads = process.env.PEER_THREADS ?? String(cpus().length);
  const r = spawnSync(py, [script, String(dIn), String(dSae), String(B), String(steps), threads], { encoding: 'utf8' });
  const m = /([\d.]+) samples\/s/.exec(r.stdout);
  if (r.status !== 0 || !m) return { error: (r.stderr || r.stdout).trim().split('\n').pop() };
  return { samplesPerS: Number(m[1]), line: r.stdout.trim() };
}

async function main() {
  const backend = arg('backend', 'wasm') as BackendName;
  const workers = Number(arg('workers', String(cpus().length)));
  const seconds = Number(arg('seconds', '3'));
  const shapes = arg('shapes', DEFAULT_SHAPES).split(',').map((s) => s.split('x').map(Number));
  const here = dirname(fileURLToPath(import.meta.url));
  const script = process.env.PEER_SCRIPT ?? [resolve(here, '../../../shared/bench/seed_sae.py'), '/work/shared/bench/seed_sae.py'].find(existsSync);
  const py = findTorchPython();
  if (!py) console.log('peer skipped: no python with torch (set PYTHON=...; Debian: apt-get install python3-torch)');
  else if (!script) console.log('peer skipped: seed_sae.py not found (set PEER_SCRIPT=...)');
  else console.log(`peer: ${py} ${script} (threads ${process.env.PEER_THREADS ?? cpus().length})`);
  console.log(`${'d_in'.padStart(5)} ${'d_sae'.padStart(6)} ${'batch'.padStart(5)}  ${'ours 1 thread'.padStart(13)}  ${`ours ${workers} workers`.padStart(15)}  ${'peer'.padStart(8)}  ratio 1t  ratio ${workers}w   (samples/s)`);
  for (const [dIn, dSae, B] of shapes) {
    const o = await ours(backend, dIn, dSae, B, seconds);
    const par = workers > 1 && (o.name === 'wasm' || o.name === 'cpu') ? await oursParallel(o.name, workers, dIn, dSae, B, seconds) : null;
    const p = py && script ? peer(py, script, dIn, dSae, B, o.samplesPerS * 3, seconds) : null;
    const peerRate = p && 'samplesPerS' in p ? p.samplesPerS! : null;
    const peerCol = peerRate !== null ? peerRate.toFixed(0) : p ? `error: ${p.error}` : 'skipped';
    const ratio = (r: number | undefined) => (peerRate !== null && r !== undefined ? (r / peerRate).toFixed(2) + 'x' : '-');
    console.log(`${String(dIn).padStart(5)} ${String(dSae).padStart(6)} ${String(B).padStart(5)}  ` +
      `${o.samplesPerS.toFixed(0).padStart(13)}  ${(par ? par.samplesPerS.toFixed(0) : '-').padStart(15)}  ${peerCol.padStart(8)}  ` +
      `${ratio(o.samplesPerS).padStart(8)}  ${ratio(par?.samplesPerS).padStart(8)}   (${o.name})`);
  }
}

await main();
