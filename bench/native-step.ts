/**
 * The native CPU addon's fused training step alone (no training loop): samples/s, GFLOP/s
 * (12 x d_in x d_sae FLOPs per sample) and, beside it, the raw sgemm rate of the encoder's
 * product [B, d_in] x [d_in, d_sae] through the same OpenBLAS, so the step's share of the
 * machine's matrix-product rate reads directly.
 *
 *   node dist/bench/native-step.js [--shapes 512x4096x1024,2048x16384x1024] [--threads 1,2] [--seconds 3]
 *                                  [--threshold 0.001] [--path auto|dense|sparse] [--profile]
 *
 * Inputs are uniform in [-1, 1], so z has a standard deviation of about 0.58: the default
 * threshold 0.001 makes about half the features fire (the start of a training, dense path);
 * --threshold 1.34 about 1% (a trained SAE's L0, sparse path). Wall-clock: run it on a quiet
 * machine; "per CPU-s" divides by the process's CPU time instead, which holds up better under load.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import { initialWeights, PARAM_NAMES } from '../src/sae/jumprelu.js';
import { mulberry32 } from '../src/random.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { loadNativeAddon } = createRequire(import.meta.url)(join(root, 'native', 'index.cjs'));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

interface Options {
  threads: number;
  seconds: number;
  threshold: number;
  path: string;
}

function timeStep(addon: any, dIn: number, dSae: number, B: number, o: Options) {
  const cfg = { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 };
  const rng = mulberry32(0);
  const weights = initialWeights(cfg, o.threshold, rng);
  const zeros = () => Object.fromEntries(PARAM_NAMES.map((n) => [n, new Float32Array(weights[n].length)]));
  const sae = new addon.Sae({ ...cfg, threads: o.threads, path: o.path });
  sae.setState({ weights, adam: { m: zeros(), v: zeros(), steps: [0, 0, 0] }, sinceFired: new Float32Array(dSae) });
  const batches = Array.from({ length: 4 }, () => Float32Array.from({ length: B * dIn }, () => 2 * rng() - 1));
  let l0 = 0;
  for (let k = 0; k < 2; k++) l0 = sae.step(batches[k], B, 4e-4, 7e-5)[1];
  let steps = 0;
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while (performance.now() - t0 < o.seconds * 1000 || steps < 3) sae.step(batches[steps++ % 4], B, 4e-4, 7e-5);
  const dt = (performance.now() - t0) / 1000 / steps;
  const cpu = process.cpuUsage(cpu0);
  const cpuPerStep = (cpu.user + cpu.system) / 1e6 / steps;
  const bytes = sae.bytes();
  const path = sae.lastPath();
  if (process.argv.includes('--profile')) {
    const prof = sae.profile() as Record<string, number>;
    const total = Object.values(prof).reduce((a, b) => a + b, 0);
    for (const [phase, s] of Object.entries(prof).sort((a, b) => b[1] - a[1])) {
      const msPerStep = ((1000 * s) / (steps + 2)).toFixed(1).padStart(8);
      const share = ((100 * s) / total).toFixed(0).padStart(3);
      console.log(`  ${phase.padEnd(36)} ${msPerStep} ms/step  ${share}%`);
    }
  }
  sae.dispose();
  return { samplesPerS: B / dt, perCpuS: B / cpuPerStep, gflops: (12 * dIn * dSae * B) / dt / 1e9, l0, bytes, path };
}

function main() {
  const { addon, error } = loadNativeAddon();
  if (!addon) {
    console.log(`native addon not available: ${error}`);
    return;
  }
  const shapes = arg('shapes', '512x4096x1024,2048x16384x1024')
    .split(',')
    .map((s) => s.split('x').map(Number));
  const threadCounts = arg('threads', `1,${cpus().length}`).split(',').map(Number);
  const seconds = Number(arg('seconds', '3'));
  const threshold = Number(arg('threshold', '0.001'));
  const path = arg('path', 'auto');
  const info = addon.info();
  console.log(
    `${info.blas} ${info.coretype} (${info.parallel}), OMP_WAIT_POLICY=${process.env.OMP_WAIT_POLICY}, ` +
      `OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(auto)'}`,
  );
  console.log(
    'shape (d_in x d_sae x B)  threads  path    samples/s  per CPU-s  step GFLOP/s  sgemm GFLOP/s  step/sgemm     L0  native MiB',
  );
  for (const [dIn, dSae, B] of shapes) {
    for (const threads of threadCounts) {
      const r = timeStep(addon, dIn, dSae, B, { threads, seconds, threshold, path });
      const sgemm = addon.sgemmBench(B, dSae, dIn, Math.max(2, Math.round(2e10 / (2 * B * dSae * dIn))), threads);
      console.log(
        `${`${dIn}x${dSae}x${B}`.padEnd(25)} ${String(threads).padStart(7)}  ${r.path.padEnd(6)}  ` +
          `${r.samplesPerS.toFixed(0).padStart(9)}  ${r.perCpuS.toFixed(0).padStart(9)}  ` +
          `${r.gflops.toFixed(1).padStart(12)}  ${sgemm.toFixed(1).padStart(13)}  ${(r.gflops / sgemm).toFixed(2).padStart(10)}  ` +
          `${r.l0.toFixed(0).padStart(5)}  ${(r.bytes / 2 ** 20).toFixed(0).padStart(10)}`,
      );
    }
  }
}

main();
