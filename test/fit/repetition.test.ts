/**
 * Repeated data (Muennighoff et al.'s effective data): the transform and its inverse, a
 * Chinchilla fit on points that know their unique vectors, and the flags of a data size
 * beyond the measured passes, in fit-law's outputs and in the decide stage's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
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
