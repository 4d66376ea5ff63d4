/**
 * fit-law on power laws: exact and least-squares recovery, power plus constant, filters,
 * errors, bootstrap determinism, extrapolation flags. Runs the stage adapter where the
 * params shape matters, the fit function where only numbers do.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fitLawStage from '../../src/stages/fit-law.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { minimizeLbfgs } from '../../src/fit/lbfgs.js';

const close = (actual: number, expected: number, rel: number, what: string) =>
  assert.ok(
    Math.abs(actual - expected) <= rel * Math.abs(expected),
    `${what}: ${actual} vs ${expected} (rel tol ${rel})`,
  );

test('L-BFGS minimises the Rosenbrock function', () => {
  const r = minimizeLbfgs(
    (x, g) => {
      const [a, b] = [x[0], x[1]];
      g[0] = -2 * (1 - a) - 400 * a * (b - a * a);
      g[1] = 200 * (b - a * a);
      return (1 - a) ** 2 + 100 * (b - a * a) ** 2;
    },
    [-1.2, 1],
  );
  assert.ok(r.converged, r.reason);
  close(r.x[0], 1, 1e-6, 'x');
  close(r.x[1], 1, 1e-6, 'y');
});

test("two points: the power law passes exactly through them (the seed's case)", async () => {
  // y = 3 x^-0.25 at x = 256 and 4096
  const x = [256, 4096];
  const y = x.map((v) => 3 * v ** -0.25);
  const { outputs, outDir } = await runStageDirect(fitLawStage, { x, y, predict_at: [16384] });
  const p = outputs.params as Record<string, number>;
  close(p.a, 3, 1e-12, 'a');
  close(p.b, -0.25, 1e-12, 'b');
  close((outputs.predictions as number[])[0], 3 * 16384 ** -0.25, 1e-12, 'prediction');
  const warnings = outputs.warnings as string[];
  assert.ok(
    warnings.some((w) => /no residual scatter/.test(w)),
    'warns that two points give no interval',
  );
  assert.deepEqual(outputs.intervals, { a: null, b: null });
  const fit = JSON.parse(readFileSync(join(outDir, outputs.fit as string), 'utf8'));
  assert.equal(fit.law, 'power');
  assert.equal(fit.predictions[0].extrapolation, 4);
  assert.ok(
    fit.warnings.some((w: string) => /4\.0x the largest fitted value/.test(w)),
    'extrapolation flagged',
  );
});

test('many noisy points: least squares in log space, intervals cover the truth', async () => {
  const x = [128, 256, 512, 1024, 2048, 4096, 8192];
  const noise = [0.01, -0.02, 0.015, -0.005, 0.02, -0.01, 0.0];
  const y = x.map((v, i) => 0.7 * v ** 0.3 * Math.exp(noise[i]));
  const { outputs } = await runStageDirect(fitLawStage, { x, y, bootstrap: 300, seed: 1 });
  const p = outputs.params as Record<string, number>;
  close(p.b, 0.3, 0.03, 'b');
  close(p.a, 0.7, 0.1, 'a');
  const iv = outputs.intervals as Record<string, [number, number]>;
  assert.ok(iv.b[0] < 0.3 && 0.3 < iv.b[1], `interval ${iv.b} covers 0.3`);
  assert.ok(iv.b[0] < p.b && p.b < iv.b[1]);
});

test('bootstrap intervals are deterministic for a seed and change with it', async () => {
  const x = [1, 2, 4, 8, 16, 32];
  const y = [1.0, 1.9, 4.3, 7.6, 16.8, 31];
  const run = async (seed: number) =>
    (await runStageDirect(fitLawStage, { x, y, seed, bootstrap: 100 })).outputs.intervals;
  assert.deepEqual(await run(7), await run(7));
  assert.notDeepEqual(await run(7), await run(8));
});

test('fit.json is the same bytes when the fit runs again (no timings: its digest feeds the cache)', async () => {
  const x = [1, 2, 4, 8, 16, 32];
  const y = [1.0, 1.9, 4.3, 7.6, 16.8, 31];
  const fitFile = async () => {
    const { outDir } = await runStageDirect(fitLawStage, { x, y, seed: 3, bootstrap: 50 });
    return readFileSync(join(outDir, 'fit.json'), 'utf8');
  };
  assert.equal(await fitFile(), await fitFile());
});

test('power_plus_constant recovers c + a x^b', async () => {
  const x = [10, 30, 100, 300, 1000, 3000, 10000, 30000];
  const y = x.map((v) => 0.5 + 3 * v ** -0.4);
  const { outputs } = await runStageDirect(fitLawStage, { law: 'power_plus_constant', x, y, bootstrap: 20 });
  const p = outputs.params as Record<string, number>;
  close(p.a, 3, 1e-4, 'a');
  close(p.b, -0.4, 1e-4, 'b');
  close(p.c, 0.5, 1e-4, 'c');
  assert.deepEqual(outputs.warnings, []);
});

test('select_min_by keeps the best point per x (the learning-rate law)', async () => {
  // Three learning rates per width; the best lr (lowest loss) follows lr = 0.02 * width^-0.5.
  const widths = [256, 1024, 4096];
  const x: number[] = [],
    y: number[] = [],
    losses: number[] = [];
  for (const w of widths) {
    const best = 0.02 * w ** -0.5;
    for (const [lr, loss] of [
      [best / 3, 1.2],
      [best, 1.0],
      [best * 3, 1.5],
    ]) {
      x.push(w);
      y.push(lr);
      losses.push(loss);
    }
  }
  const { outputs, outDir } = await runStageDirect(fitLawStage, { x, y, select_min_by: losses, bootstrap: 0 });
  const p = outputs.params as Record<string, number>;
  close(p.b, -0.5, 1e-10, 'b');
  close(p.a, 0.02, 1e-10, 'a');
  const fit = JSON.parse(readFileSync(join(outDir, 'fit.json'), 'utf8'));
  assert.equal(fit.points.filter((q: { kept: boolean }) => q.kept).length, 3);
  assert.equal(fit.points.filter((q: { dropped_by?: string }) => q.dropped_by === 'select_min_by').length, 6);
});

test('drop_highest and x_max drop the named points', async () => {
  const x = [1, 2, 4, 8, 16, 32, 64];
  const y = x.map((v) => 2 * v ** -0.5);
  y[1] = 50; // an outlier: the highest y
  const { outputs, outDir } = await runStageDirect(fitLawStage, { x, y, drop_highest: 1, x_max: 40, bootstrap: 0 });
  close((outputs.params as Record<string, number>).b, -0.5, 1e-10, 'b');
  const fit = JSON.parse(readFileSync(join(outDir, 'fit.json'), 'utf8'));
  assert.equal(fit.points[1].dropped_by, 'drop_highest');
  assert.equal(fit.points[6].dropped_by, 'x_range');
  assert.equal(fit.goodness.n_points, 5);
});

test('too few points: an error naming the law, its parameters and the fields', async () => {
  await assert.rejects(
    runStageDirect(fitLawStage, { law: 'power_plus_constant', x: [1, 2], y: [3, 2] }),
    /law "power_plus_constant" has 3 parameters \(a, b, c\) but only 2 distinct point\(s\).*x\/y/,
  );
  await assert.rejects(runStageDirect(fitLawStage, { x: [4, 4, 4], y: [1, 2, 3] }), /only 1 distinct point/);
  await assert.rejects(runStageDirect(fitLawStage, { x: [1, 2, 3] }), /missing y/);
  await assert.rejects(runStageDirect(fitLawStage, { x: [1, 2, 3], y: [1, 2] }), /y has 2 values, expected 3/);
});

test('non-positive or missing values: an error naming the offending point', async () => {
  await assert.rejects(
    runStageDirect(fitLawStage, { x: [1, 2, 3], y: [1, -2, 3] }),
    /x\[1\]=2, y\[1\]=-2: y = -2 is not a positive number/,
  );
  await assert.rejects(
    runStageDirect(fitLawStage, { x: [0, 2, 3], y: [1, 2, 3] }),
    /x\[0\]=0.*x = 0 is not a positive number/,
  );
});

test('a null y (a diverged or failed run) is left out with a warning, not fitted', async () => {
  const { outputs, outDir } = await runStageDirect(fitLawStage, {
    x: [1, 2, 3, 4],
    y: [1, null, 1 / 9, 1 / 16],
    bootstrap: 0,
  });
  assert.ok(
    (outputs.warnings as string[]).some((w) => /1 point\(s\) without a value .* x\[1\]=2, y\[1\]=NaN/.test(w)),
    String(outputs.warnings),
  );
  const fit = JSON.parse(readFileSync(join(outDir, 'fit.json'), 'utf8'));
  assert.deepEqual(
    fit.points.map((p: { kept: boolean }) => p.kept),
    [true, false, true, true],
  );
  // The kept points lie on y = x^-2 exactly.
  assert.ok(Math.abs((outputs.params as { b: number }).b + 2) < 1e-9, JSON.stringify(outputs.params));
});

test('a fit stopped before convergence says so in warnings, fit.json and the log', async () => {
  const x = [10, 30, 100, 300, 1000, 3000, 10000, 30000];
  const y = x.map((v) => 0.5 + 3 * v ** -0.4);
  const { outputs, outDir, logs } = await runStageDirect(fitLawStage, {
    law: 'power_plus_constant',
    x,
    y,
    bootstrap: 0,
    max_iterations: 1,
  });
  const warnings = outputs.warnings as string[];
  assert.ok(
    warnings.some((w) => /did not converge: L-BFGS stopped \(max-iterations\)/.test(w)),
    warnings.join('\n'),
  );
  const fit = JSON.parse(readFileSync(join(outDir, 'fit.json'), 'utf8'));
  assert.equal(fit.optimizer.converged, false);
  assert.deepEqual(fit.warnings, warnings);
  assert.ok(logs.some((l) => /^warning: .*did not converge/.test(l)));
});

test('points from a csv file, relative to the pipeline folder', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'fit-csv-'));
  const rows = [1, 2, 4, 8].map((v) => `${v},"run ${v}",${5 * v ** 0.5}`);
  writeFileSync(join(dir, 'runs.csv'), ['width,name,loss', ...rows].join('\n') + '\n');
  const params = { csv: 'runs.csv', x_column: 'width', y_column: 'loss', bootstrap: 0 };
  assert.deepEqual(fitLawStage.inputFiles!(params as never), ['runs.csv']);
  const { outputs } = await runStageDirect(fitLawStage, params, { pipelineDir: dir });
  close((outputs.params as Record<string, number>).b, 0.5, 1e-12, 'b');
  await assert.rejects(
    runStageDirect(fitLawStage, { ...params, y_column: 'los' }, { pipelineDir: dir }),
    /y_column "los" is not a column of runs\.csv \(columns: width, name, loss\)/,
  );
  await assert.rejects(
    runStageDirect(fitLawStage, { ...params, y_column: 'name' }, { pipelineDir: dir }),
    /row 2 of runs\.csv, column "name": "run 1" is not a number/,
  );
});

test('three sizes: residual bootstrap (default) keeps every size; resampling cases degenerates', async () => {
  const x = [256, 1024, 4096];
  const y = [0.9, 0.7, 0.55];
  const residuals = await runStageDirect(fitLawStage, { x, y, bootstrap: 200 });
  const b = (residuals.outputs.params as Record<string, number>).b;
  const iv = (residuals.outputs.intervals as Record<string, [number, number]>).b;
  assert.ok(iv[0] < b && b < iv[1] && iv[1] - iv[0] > 1e-3, `interval ${iv} around ${b}`);
  assert.deepEqual(residuals.outputs.warnings, []);
  const cases = await runStageDirect(fitLawStage, { x, y, bootstrap: 200, bootstrap_method: 'cases' });
  assert.ok((cases.outputs.warnings as string[]).some((w) => /bootstrap refits \(cases\) failed/.test(w)));
});

test('select_min_by keeps the no-value reason of a point it never considered', async () => {
  const { outputs } = await runStageDirect(fitLawStage, {
    x: [1, 1, 2, 2, 4],
    y: [1, 2, null, 1, 0.5],
    select_min_by: [1, 0.9, 0.1, 0.8, 0.7],
    bootstrap: 0,
  });
  assert.ok(
    (outputs.warnings as string[]).some((w) => /1 point\(s\) without a value/.test(w)),
    String(outputs.warnings),
  );
});
