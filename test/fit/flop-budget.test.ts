/**
 * flop-budget with the seed's defaults reproduces the seed's figures at the precision the
 * seed states them (the study's brief, "The compute budget"), and small runs / warnings add up.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import flopBudget from '../../src/stages/flop-budget.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { roundSignificant, type Budget } from '../../src/budget/flops.js';

test("the seed's defaults give the seed's figures", async () => {
  const { outputs } = await runStageDirect(flopBudget, {});
  const b = outputs.budget as unknown as Budget;
  assert.equal(roundSignificant(b.tokens_equivalent, 3), 4.24e9); // "4.2 mil millones"
  assert.equal(b.data_budget, 2.1e9); // 2.12e9 rounded as the seed does
  assert.equal(outputs.data_budget, 2.1e9);
  assert.equal(roundSignificant(b.llama_flops, 2), 2.5e18); // (2.1e9)(1.2e9)
  assert.equal(roundSignificant(b.llama_hours, 2), 4.2); // at 165e12 FLOP/s
  assert.equal(roundSignificant(b.final_sae_flops, 2), 8.5e17); // 6(2.1e9)(2048^2)(8)(2)
  assert.equal(b.final_sae_flops, 6 * 2.1e9 * 2048 ** 2 * 8 * 2);
  assert.equal(outputs.final_sae_flops, b.final_sae_flops);
  assert.equal(b.d_sae, 16384);
  assert.equal(outputs.small_fraction, 0);
  assert.deepEqual(b.warnings, []);
  assert.ok(b.table.some((r) => r.item.startsWith('Llama') && r.flops === b.llama_flops));
});

test('without rounding the data budget is 2.12e9; utilisation scales the hours', async () => {
  const { outputs } = await runStageDirect(flopBudget, { round_data_budget: false, utilization: 0.5 });
  const b = outputs.budget as unknown as Budget;
  assert.equal(roundSignificant(b.data_budget, 3), 2.12e9);
  assert.equal(roundSignificant(b.llama_hours, 3), roundSignificant((2 * b.data_budget * 1.2e9) / 165e12 / 3600, 3));
});

test('small runs: cartesian groups with counts, fraction of the final run, dataset passes', async () => {
  const { outputs, logs } = await runStageDirect(flopBudget, {
    dataset_rows: 668501,
    final_n_samples: 2e8,
    small_runs: [
      { name: 'loss sweep', d_sae: [1024, 4096], n_samples: [1e6, 4e6] },
      { name: 'lr sweep', d_sae: 2048, n_samples: 2e6, count: 3 },
    ],
  });
  const b = outputs.budget as unknown as Budget;
  const per = (d: number, n: number) => 6 * 2 * 2048 * d * n;
  const expected = per(1024, 1e6) + per(1024, 4e6) + per(4096, 1e6) + per(4096, 4e6) + 3 * per(2048, 2e6);
  assert.equal(b.small_runs.length, 5);
  assert.equal(b.small_total_flops, expected);
  assert.equal(outputs.data_budget, 2e8);
  assert.equal(outputs.small_fraction, expected / per(16384, 2e8));
  // 2e8 > 668501 (final), 1e6, 4e6 and 2e6 exceed it too: a passes warning for the final run and one
  // per group of small runs (a sweep's runs are one statement, not a line each).
  assert.equal(b.warnings.length, 3);
  assert.match(b.warnings[0], /final run: 2\.0e8 vectors exceed the dataset's 668,501 rows: 299\.2 passes/);
  assert.equal(
    b.warnings[1],
    "small runs loss sweep: 4 of 4 exceed the dataset's 668,501 rows (d_sae 1024, 4096 at 1.0e6-4.0e6 vectors): " +
      'up to 6.0 passes over the same vectors',
  );
  assert.match(
    b.warnings[2],
    /^small runs lr sweep: 3 of 3 exceed .* \(d_sae 2048 at 2\.0e6 vectors\): up to 3\.0 passes/,
  );
  assert.ok(logs.some((l) => l.startsWith('warning: final run')));
});

test('bad small run: an error naming the field', async () => {
  await assert.rejects(
    runStageDirect(flopBudget, { small_runs: [{ d_sae: [1024, 0], n_samples: 1e6 }] }),
    /small_runs|d_sae/,
  );
});

test("small runs above the seed's 6.25% small-run budget: a warning naming the fraction and the limit", async () => {
  // 1e9 of 2048-wide runs against a 16384-wide final on 1e9: 12.5% of the final SAE.
  const over = await runStageDirect(flopBudget, {
    final_n_samples: 1e9,
    small_runs: [{ name: 'loss sweep', d_sae: 2048, n_samples: 1e9 }],
  });
  const b = over.outputs.budget as unknown as Budget;
  assert.equal(over.outputs.small_fraction, 0.125);
  assert.deepEqual(b.warnings, [
    "the small runs cost 12.5% of the final SAE, above the small-run budget of 6.25% (small_fraction_limit; the seed's 1/16)",
  ]);
  // At the limit itself, and with a limit the study sets, no warning.
  const at = await runStageDirect(flopBudget, {
    final_n_samples: 1e9,
    small_runs: [{ d_sae: 1024, n_samples: 1e9 }],
  });
  assert.equal(at.outputs.small_fraction, 0.0625);
  assert.deepEqual((at.outputs.budget as unknown as Budget).warnings, []);
  const raised = await runStageDirect(flopBudget, {
    final_n_samples: 1e9,
    small_fraction_limit: 0.2,
    small_runs: [{ d_sae: 2048, n_samples: 1e9 }],
  });
  assert.deepEqual((raised.outputs.budget as unknown as Budget).warnings, []);
});
