/**
 * The Chinchilla law on synthetic data: recovery of known parameters, the compute-optimal
 * data size against a numerical minimisation, bootstrap determinism, extrapolation flags.
 * Small grids keep it fast; the full grid is exercised by besiroglu.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLaw, optimalData } from '../../src/fit/fit.js';
import type { FitPoint } from '../../src/fit/points.js';
import fitLawStage from '../../src/stages/fit-law.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { seededRandom } from '../../src/fit/stats.js';

const TRUE = { E: 1.7, A: 400, B: 2500, alpha: 0.34, beta: 0.37 };
const law = (p: typeof TRUE, N: number, D: number) => p.E + p.A / N ** p.alpha + p.B / D ** p.beta;
const SMALL_GRID = { alpha: [0.5, 1], beta: [0.5, 1], e: [0, 1], a: [5, 10], b: [5, 10] };

function syntheticPoints(noise: number, seed = 3): { N: number[]; D: number[]; y: number[] } {
  const random = seededRandom(seed);
  const N: number[] = [],
    D: number[] = [],
    y: number[] = [];
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 8; j++) {
      const n = 1e7 * 10 ** ((i * 3) / 7);
      const d = 1e9 * 10 ** ((j * 3) / 7);
      N.push(n);
      D.push(d);
      y.push(law(TRUE, n, d) * Math.exp(noise * (random() * 2 - 1)));
    }
  }
  return { N, D, y };
}

const close = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (rel tol ${rel})`,
  );

test('recovers known parameters from exact synthetic losses', async () => {
  const { N, D, y } = syntheticPoints(0);
  const { outputs } = await runStageDirect(fitLawStage, { law: 'chinchilla', N, D, y, grid: SMALL_GRID, bootstrap: 0 });
  const p = outputs.params as Record<string, number>;
  for (const k of Object.keys(TRUE) as Array<keyof typeof TRUE>) close(p[k], TRUE[k], 1e-4, k);
  assert.deepEqual(outputs.warnings, []);
});

test('recovers parameters within noise, intervals from a seeded bootstrap are reproducible', async () => {
  const { N, D, y } = syntheticPoints(0.005);
  const run = () =>
    runStageDirect(fitLawStage, { law: 'chinchilla', N, D, y, grid: SMALL_GRID, bootstrap: 40, seed: 5 });
  const [a, b] = [await run(), await run()];
  const p = a.outputs.params as Record<string, number>;
  close(p.E, TRUE.E, 0.02, 'E');
  close(p.alpha, TRUE.alpha, 0.1, 'alpha');
  close(p.beta, TRUE.beta, 0.1, 'beta');
  assert.deepEqual(a.outputs.intervals, b.outputs.intervals);
  const iv = a.outputs.intervals as Record<string, [number, number]>;
  for (const k of ['E', 'alpha', 'beta']) assert.ok(iv[k][0] <= p[k] && p[k] <= iv[k][1], `${k} inside its interval`);
});

test('C = 6ND given instead of D gives the same fit', async () => {
  const { N, D, y } = syntheticPoints(0);
  const C = N.map((n, i) => 6 * n * D[i]);
  const { outputs } = await runStageDirect(fitLawStage, { law: 'chinchilla', N, C, y, grid: SMALL_GRID, bootstrap: 0 });
  close((outputs.params as Record<string, number>).beta, TRUE.beta, 1e-4, 'beta');
});

test('optimal_data: D_opt(N) matches a numerical minimisation of L at fixed C = 6ND', () => {
  for (const C of [1e20, 1e22, 1e24]) {
    // Golden-section search of L(N, C/(6N)) over log N.
    const f = (logN: number) => law(TRUE, Math.exp(logN), C / (6 * Math.exp(logN)));
    let [lo, hi] = [Math.log(1e3), Math.log(C / 6 / 1e3)];
    const g = (Math.sqrt(5) - 1) / 2;
    for (let k = 0; k < 200; k++) {
      const m1 = hi - g * (hi - lo),
        m2 = lo + g * (hi - lo);
      if (f(m1) < f(m2)) hi = m2;
      else lo = m1;
    }
    const Nopt = Math.exp((lo + hi) / 2);
    const Dnum = C / (6 * Nopt);
    close(optimalData(TRUE, Nopt), Dnum, 1e-6, `D_opt at C=${C}`);
  }
});

test('optimal_data and predictions come out of the stage, extrapolation flagged', async () => {
  const { N, D, y } = syntheticPoints(0);
  const { outputs } = await runStageDirect(fitLawStage, {
    law: 'chinchilla',
    N,
    D,
    y,
    grid: SMALL_GRID,
    bootstrap: 0,
    predict_at: [
      { N: 1e9, D: 1e11 },
      { N: 1e12, D: 1e13 },
    ],
    optimal_data_for: [1e9],
  });
  const pred = outputs.predictions as number[];
  close(pred[0], law(TRUE, 1e9, 1e11), 1e-4, 'prediction inside the data');
  close((outputs.optimal_data as number[])[0], optimalData(TRUE, 1e9), 1e-3, 'D_opt(1e9)');
  const warnings = outputs.warnings as string[];
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0], /prediction 1 at N=1\.000e\+12, D=1\.000e\+13 is 100\.0x the largest fitted value/);
});

test('too few points for five parameters: a clear error', async () => {
  const pts: FitPoint[] = [1, 2, 3].map((i) => ({
    N: 1e8 * i,
    D: 1e10 * i,
    y: 3 - 0.1 * i,
    kept: true,
    source: `N[${i}]`,
  }));
  assert.throws(
    () => fitLaw(pts, { law: 'chinchilla' }),
    /law "chinchilla" has 5 parameters \(E, A, B, alpha, beta\) but only 3 distinct point\(s\)/,
  );
});
