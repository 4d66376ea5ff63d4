/**
 * Times the Chinchilla refit (Besiroglu et al.'s 4,500-start grid, 240 runs) and its
 * bootstrap, and prints the fitted parameters beside the scipy reference in
 * data/chinchilla/README.md. If python3 with scipy and numpy is available it also times
 * scipy's L-BFGS-B on the same grid (numerical gradients, as Besiroglu et al. ran it).
 *   node dist/bench/fit.js [bootstrap=200] [scipy_starts=150]
 * scipy runs an evenly spaced subset of the grid (every k-th start) and the full-grid time is
 * projected from its time per start: the whole grid takes scipy many minutes.
 * Run it under `flock /tmp/bench.lock` on a shared machine: wall time counts other load.
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fitLaw } from '../src/fit/fit.js';
import { applyFilters, pointsFromCsv } from '../src/fit/points.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const csv = join(root, 'data', 'chinchilla', 'svg_extracted_data.csv');
const bootstrap = Number(process.argv[2] ?? 200);
const scipyStarts = Number(process.argv[3] ?? 150);

const points = pointsFromCsv('chinchilla', {
  path: csv,
  name: 'svg_extracted_data.csv',
  N_column: 'Model Size',
  C_column: 'Training FLOP',
  y_column: 'loss',
});
applyFilters('chinchilla', points, { drop_highest: 5 });
const cpu0 = process.cpuUsage();
const result = fitLaw(points, { law: 'chinchilla', bootstrap, seed: 0 });
const cpu = process.cpuUsage(cpu0);
const p = result.params;
const reference = { E: 1.8172, A: 477.9, B: 2142.8, alpha: 0.3473, beta: 0.3672 };
console.log(
  `ours : grid of ${result.timing.starts} starts in ${result.timing.fitSeconds.toFixed(2)} s wall ` +
    `(${((1000 * result.timing.fitSeconds) / result.timing.starts).toFixed(2)} ms/start); ` +
    `bootstrap ${bootstrap} refits in ${result.timing.bootstrapSeconds.toFixed(2)} s; CPU ${(cpu.user / 1e6).toFixed(2)} s user`,
);
for (const k of Object.keys(reference) as Array<keyof typeof reference>) {
  console.log(
    `  ${k.padEnd(5)} ours ${String(p[k]?.toPrecision(6)).padStart(10)}  scipy ${String(reference[k]).padStart(8)}  ` +
      `CI95 [${result.intervals[k]?.map((v) => v.toPrecision(4)).join(', ') ?? '-'}]`,
  );
}
console.log(
  `  objective ours ${(result.json.goodness as { objective: number }).objective.toPrecision(8)}  scipy 0.0010183`,
);

const py = `
import time, numpy as np, csv
from scipy.optimize import minimize
from scipy.special import huber, logsumexp
rows = list(csv.DictReader(open(${JSON.stringify(csv)})))
N = np.array([float(r['Model Size']) for r in rows]); C = np.array([float(r['Training FLOP']) for r in rows])
L = np.array([float(r['loss']) for r in rows]); D = C / (6 * N)
keep = L < np.sort(L)[-5]; N, D, L = N[keep], D[keep], L[keep]
def f(p):
    a, b, e, al, be = p
    pred = logsumexp([a - al*np.log(N), b - be*np.log(D), np.full(len(N), e)], axis=0)
    return np.sum(huber(1e-3, pred - np.log(L)))
grid = [[a, b, e, al, be] for al in np.arange(0, 2.5, .5) for be in np.arange(0, 2.5, .5)
        for e in np.arange(-1, 1.5, .5) for a in np.arange(0, 30, 5) for b in np.arange(0, 30, 5)]
step = max(1, len(grid) // ${scipyStarts})
subset = grid[::step]
t = time.time(); best = None
for x0 in subset:
    r = minimize(f, x0, method='L-BFGS-B')
    if best is None or r.fun < best.fun: best = r
dt = time.time() - t
a, b, e, al, be = best.x
print(f"scipy: {len(subset)} of {len(grid)} starts (every {step}th) in {dt:.1f} s = {1000*dt/len(subset):.1f} ms/start; "
      f"full grid projected {dt*len(grid)/len(subset):.0f} s")
print(f"  best of subset: E={np.exp(e):.4f} A={np.exp(a):.1f} B={np.exp(b):.1f} alpha={al:.4f} beta={be:.4f} objective={best.fun:.7f}")
`;
const probe = spawnSync('python3', ['-c', 'import scipy, numpy'], { encoding: 'utf8' });
if (probe.status === 0) {
  const r = spawnSync('python3', ['-c', py], { encoding: 'utf8' });
  console.log((r.stdout || r.stderr).trim());
} else {
  console.log('scipy: not available here (python3 with scipy and numpy not found), no side-by-side timing');
}
