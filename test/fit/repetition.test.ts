/**
 * Repeated data (Muennighoff et al.'s effective data): the transform and its inverse, a
 * Chinchilla fit on points that know their unique vectors, and the flags of a data size
 * beyond the measured passes, in fit-law's outputs and in the decide stage's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLaw } from '../../src/fit/fit.js';
import type { FitPoint } from '../../src/fit/points.js';
import { dataForEffective, effectiveData } from '../../src/fit/repetition.js';
import fitLawStage from '../../src/stages/fit-law.js';
import decideStage from '../../src/stages/decide.js';
import { runStageDirect } from '../helpers/run-stage.js';

test('effective data: fresh data counts fully, repeats less and less, and the inverse undoes it', () => {
  assert.equal(effectiveData(5e5, 1e6, 15.4), 5e5);
  const twice = effectiveData(2e6, 1e6, 15.4);
  assert.ok(twice < 2e6 && twice > 1.9e6, `${twice}`);
  assert.ok(effectiveData(1e9, 1e6, 15.4) <= 1e6 * 16.4 * (1 + 1e-12), 'saturates at U (1 + R*)');
  for (const D of [3e5, 2e6, 4e7])
    assert.ok(Math.abs(dataForEffective(effectiveData(D, 1e6, 15.4), 1e6, 15.4) / D - 1) < 1e-9);
  assert.equal(dataForEffective(2e7, 1e6, 15.4), Infinity, 'beyond what repeating 1e6 vectors can give');
});

test('fit-law with U: fitted in effective data, optimal data in vectors with its passes, flagged beyond the measured passes', async () => {
  const U = 2e5;
  const N: number[] = [],
    D: number[] = [],
    y: number[] = [],
    Us: number[] = [];
  for (const n of [32, 64, 128, 256]) {
    for (const d of [2.5e4, 5e4, 1e5, 2e5]) {
      N.push(n);
      D.push(d);
      Us.push(Math.min(d, U));
      y.push(0.05 + 3 * n ** -0.5 + 40 * effectiveData(d, U, 15.4) ** -0.4);
    }
  }
  const { outputs } = await runStageDirect(fitLawStage, {
    law: 'chinchilla',
    N,
    D,
    U: Us,
    y,
    unique_available: U,
    optimal_data_for: [512],
    bootstrap: 20,
    grid: { alpha: [0.5], beta: [0.5], e: [-2], a: [1], b: [3] },
  });
  const o = outputs as any;
  assert.ok(o.optimal_data[0] > 0);
  const passes = o.optimal_data[0] / U;
  if (passes > 1)
    assert.ok(
      o.warnings.some((w: string) => w.includes('passes over the')),
      o.warnings.join('\n'),
    );
  const dec = (
    await runStageDirect(decideStage, {
      name: 'final data size (vectors)',
      value: 8e5,
      fallback: 1e6,
      fallback_rule: 'budget',
      unique_available: U,
      measured_passes: [0.5, 1],
    })
  ).outputs as any;
  assert.equal(dec.value, 8e5);
  assert.equal(dec.decision.passes, 4);
  assert.equal(dec.decision.beyond_measured_passes, true);
  assert.ok(
    dec.decision.warnings.some((w: string) =>
      w.startsWith('PASSES: final data size (vectors) = 8.00e+5 makes 4.00 passes'),
    ),
  );
});

/** The 4 x 4 grid above as fitLaw's points: with U, a run's repeated vectors count as its effective data. */
function repeatedPoints(U: number, withU: boolean): FitPoint[] {
  return [32, 64, 128, 256].flatMap((N) =>
    [2.5e4, 5e4, 1e5, 2e5, 4e5].map((D, j) => ({
      N,
      D,
      ...(withU ? { U: Math.min(D, U) } : {}),
      y: (0.05 + 3 * N ** -0.5 + 40 * effectiveData(D, U, 15.4) ** -0.4) * (1 + 0.01 * Math.sin(N + 3 * j)),
      kept: true,
      source: `N=${N} D=${D}`,
    })),
  );
}

const chinchillaAt = (p: Record<string, number | null>, N: number, D: number) =>
  p.E! + p.A! / N ** p.alpha! + p.B! / D ** p.beta!;

test('predict_at {N, D} counts D in vectors: the law at their effective data, stated with the passes', () => {
  const U = 1e5;
  const D = 5e6; // 50 passes over the unique vectors, far beyond the 4 measured
  const out = fitLaw(repeatedPoints(U, true), {
    law: 'chinchilla',
    bootstrap: 20,
    grid: { alpha: [0.5], beta: [0.5], e: [-2], a: [1], b: [3] },
    repetition: { rStar: 15.4, uniqueAvailable: U },
    predictAt: [{ N: 512, D }],
  });
  const dEff = effectiveData(D, U, 15.4);
  assert.ok(dEff < D / 2, 'fifty passes are worth far less than fresh data');
  const p = out.json.predictions![0];
  assert.equal(p.D, D, 'the record keeps the vectors asked for');
  assert.equal(p.D_effective, dEff);
  assert.equal(p.passes, D / U);
  assert.equal(p.beyond_measured_passes, true);
  // How far beyond the data, in the law's variables: D' against the largest fitted D' (4e5 vectors, 4 passes).
  assert.equal(p.extrapolation, Math.max(512 / 256, dEff / effectiveData(4e5, U, 15.4)));
  const expected = chinchillaAt(out.params, 512, dEff);
  assert.ok(Math.abs(p.y / expected - 1) < 1e-12, `${p.y} vs the law at D' ${expected}`);
  assert.ok(p.y > chinchillaAt(out.params, 512, D), 'less optimistic than D fresh vectors');
  assert.equal(out.predictions[0], p.y);
  assert.ok(p.lo! <= p.y && p.y <= p.hi!, `${p.lo} ${p.y} ${p.hi}`);
  assert.ok(
    out.warnings.some((w) =>
      /prediction 0 .* 50 passes over the 1\.000e\+5 unique vectors, beyond the 4 passes/.test(w),
    ),
    out.warnings.join('\n'),
  );
});

test("predict_at {N, D} without a repetition model (no U): D is the law's data as is", () => {
  const U = 1e5;
  const out = fitLaw(repeatedPoints(U, false), {
    law: 'chinchilla',
    bootstrap: 0,
    grid: { alpha: [0.5], beta: [0.5], e: [-2], a: [1], b: [3] },
    predictAt: [{ N: 512, D: 5e6 }],
  });
  const p = out.json.predictions![0];
  assert.ok(Math.abs(p.y / chinchillaAt(out.params, 512, 5e6) - 1) < 1e-12);
  assert.equal(p.D_effective, undefined);
  assert.equal(p.passes, undefined);
});

test('fitLaw leaves its points as it found them: a refit without the repetition model fits D, not the first fit effective data', () => {
  const U = 1e5;
  const points = repeatedPoints(U, true);
  const before = JSON.stringify(points);
  const opts = {
    law: 'chinchilla' as const,
    bootstrap: 0,
    grid: { alpha: [0.5], beta: [0.5], e: [-2], a: [1], b: [3] },
  };
  fitLaw(points, { ...opts, repetition: { rStar: 15.4, uniqueAvailable: U } });
  assert.equal(JSON.stringify(points), before, 'the caller points are not written to');
  const fresh = fitLaw(points, opts);
  const alone = fitLaw(repeatedPoints(U, true), opts);
  assert.deepEqual(fresh.params, alone.params);
});
