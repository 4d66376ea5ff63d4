/**
 * The learning-rate law: a continuous optimum per width from a parabola in log lr, its
 * interval, edge detection (the law refuses and the decision falls back), the power law of
 * the optima, and the clamp of the extrapolated lr to a factor of the swept range.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { lrOptimum } from '../../src/fit/lr-optimum.js';
import lrLawStage from '../../src/stages/lr-law.js';
import { runStageDirect } from '../helpers/run-stage.js';

/** Loss curves with a known optimum lr*(n) = 0.1 n^-0.5, quadratic in log lr, with a little noise. */
const optimumAt = (n: number) => 0.1 * n ** -0.5;
const loss = (n: number, lr: number, wiggle = 0) => 0.2 * Math.exp(0.3 * Math.log(lr / optimumAt(n)) ** 2 + wiggle);
const GRID = (n: number) => [0.25, 0.5, 1, 2, 4].map((f) => f * optimumAt(n) * 1.3);

test('the parabola gives a continuous optimum between grid points, with an interval around it', () => {
  const n = 256;
  const lrs = GRID(n);
  const o = lrOptimum(
    n,
    lrs,
    lrs.map((lr, i) => loss(n, lr, 0.01 * Math.sin(7 * i))),
  );
  assert.equal(o.edge, null);
  assert.ok(Math.abs(Math.log(o.optimum! / optimumAt(n))) < 0.05, `optimum ${o.optimum} vs ${optimumAt(n)}`);
  assert.ok(!lrs.includes(o.optimum!), 'not quantised to the grid');
  assert.ok(o.interval![0] <= o.optimum! && o.optimum! <= o.interval![1], `${o.interval}`);
});

test('replicate runs at one lr (training seeds) count once, at the geometric mean of their losses', () => {
  const n = 256;
  const lrs = GRID(n);
  const a = lrs.map((lr, i) => loss(n, lr, 0.03 * Math.sin(7 * i)));
  const b = lrs.map((lr, i) => loss(n, lr, -0.02 * Math.cos(5 * i)));
  const pooled = lrOptimum(n, [...lrs, ...[...lrs].reverse()], [...a, ...[...b].reverse()]);
  const averaged = lrOptimum(
    n,
    lrs,
    a.map((y, i) => Math.exp((Math.log(y) + Math.log(b[i])) / 2)),
  );
  assert.deepEqual(pooled.lrs, lrs);
  assert.deepEqual(pooled.losses, averaged.losses);
  assert.equal(pooled.optimum, averaged.optimum);
  assert.deepEqual(pooled.interval, averaged.interval);
  assert.equal(pooled.replicates, 2);
  // A replicate that diverged: the lr counts as diverged (an lr that trains only sometimes is not an
  // optimum to extrapolate), and the note says how many of its runs did.
  const oneDiverged = lrOptimum(n, [...lrs, lrs[2]], [...a, null]);
  assert.equal(oneDiverged.losses[2], null);
  assert.notEqual(oneDiverged.best_swept, lrs[2]);
  assert.match(oneDiverged.note ?? '', /1 of 2 runs at lr \S+ diverged: that lr counts as diverged/);
});

test('an optimum on the edge of the grid is reported, not claimed', () => {
  const n = 256;
  const lrs = [1, 2, 4, 8].map((f) => f * optimumAt(n) * 2); // every lr above the optimum
  const o = lrOptimum(
    n,
    lrs,
    lrs.map((lr) => loss(n, lr)),
  );
  assert.equal(o.edge, 'lower');
  assert.equal(o.optimum, null);
  assert.ok(Math.abs(o.best_swept! / lrs[0] - 1) < 1e-12);
  const up = lrOptimum(
    n,
    lrs.map((l) => l / 40),
    lrs.map((lr) => loss(n, lr / 40)),
  );
  assert.equal(up.edge, 'upper');
  // A diverged run (null) above the best point bounds it: no edge.
  const bounded = lrOptimum(
    n,
    [...GRID(n).slice(0, 4), 1],
    [
      ...GRID(n)
        .slice(0, 4)
        .map((lr) => loss(n, lr)),
      null,
    ],
  );
  assert.equal(bounded.edge, null);
});

test('lr-law stage: the power law recovers the exponent, the decision is the law, within the clamp', async () => {
  const widths = [64, 128, 256, 512];
  const d_sae = widths.flatMap((n) => GRID(n).map(() => n));
  const lr = widths.flatMap((n) => GRID(n));
  const lossList = widths.flatMap((n) => GRID(n).map((l, i) => loss(n, l, 0.003 * Math.cos(3 * i + n))));
  const run = await runStageDirect(lrLawStage, { d_sae, lr, loss: lossList, predict_at: 1024 });
  const o = run.outputs as any;
  const fit = JSON.parse(readFileSync(join(run.outDir, 'fit.json'), 'utf8'));
  assert.ok(Math.abs(fit.params.b + 0.5) < 0.05, `exponent ${fit.params.b}`);
  assert.equal(o.identified, true, o.decision.reasons.join('; '));
  assert.equal(o.decision.source, 'law');
  assert.ok(Math.abs(Math.log(o.lr / optimumAt(1024))) < 0.1, `lr ${o.lr} vs ${optimumAt(1024)}`);
  assert.equal(fit.optima.length, 4);
});

test('lr-law stage: a final run longer than the sweep runs is an extrapolation in run length, stated in the decision', async () => {
  const widths = [64, 128, 256, 512];
  const d_sae = widths.flatMap((n) => GRID(n).map(() => n));
  const lr = widths.flatMap((n) => GRID(n));
  const lossList = widths.flatMap((n) => GRID(n).map((l, i) => loss(n, l, 0.003 * Math.cos(3 * i + n))));
  const n_samples = d_sae.map(() => 1e5);
  const decisionFor = async (final_n_samples: number) =>
    (
      (await runStageDirect(lrLawStage, { d_sae, lr, loss: lossList, predict_at: 1024, n_samples, final_n_samples }))
        .outputs as any
    ).decision;
  const longer = await decisionFor(4e5);
  assert.equal(longer.source, 'law', 'stated, not refused');
  assert.ok(
    longer.warnings.some((w: string) =>
      /^EXTRAPOLATION \(run length\): the optima were measured on runs of 100000 vectors; the final run trains 400000 \(4x longer\)/.test(
        w,
      ),
    ),
    longer.warnings.join('\n'),
  );
  const same = await decisionFor(1e5);
  assert.ok(!same.warnings.some((w: string) => /run length/.test(w)), same.warnings.join('\n'));
  await assert.rejects(
    runStageDirect(lrLawStage, { d_sae, lr, loss: lossList, predict_at: 1024, n_samples: [1e5] }),
    /n_samples has 1 values but there are 20 runs/,
  );
});

test('lr-law stage: an edge makes the law refuse (fallback), and a far extrapolation is clamped with a warning', async () => {
  const widths = [64, 128, 256];
  // The largest width's grid sits entirely above its optimum: an edge.
  const grid = (n: number) => (n === 256 ? GRID(n).map((l) => l * 8) : GRID(n));
  const d_sae = widths.flatMap((n) => grid(n).map(() => n));
  const lr = widths.flatMap((n) => grid(n));
  const run = await runStageDirect(lrLawStage, {
    d_sae,
    lr,
    loss: widths.flatMap((n) => grid(n).map((l) => loss(n, l))),
    predict_at: 512,
  });
  const o = run.outputs as any;
  assert.equal(o.identified, false);
  assert.equal(o.decision.source, 'fallback');
  assert.ok(
    readFileSync(join(run.outDir, 'fit.json'), 'utf8').includes('FALLBACK: final learning rate'),
    'the fallback is in fit.json (the report shows its warnings)',
  );
  assert.ok(
    o.warnings.some((w: string) => w.startsWith('EDGE: d_sae 256')),
    o.warnings.join('\n'),
  );
  assert.ok(o.warnings.some((w: string) => w.startsWith('FALLBACK: final learning rate')));

  // Identified law, but the final width is so far out that its lr leaves the swept range by more than the factor.
  const wide = [64, 128, 256, 512];
  const run2 = await runStageDirect(lrLawStage, {
    d_sae: wide.flatMap((n) => GRID(n).map(() => n)),
    lr: wide.flatMap((n) => GRID(n)),
    loss: wide.flatMap((n) => GRID(n).map((l, i) => loss(n, l, 0.003 * Math.cos(3 * i + n)))),
    predict_at: 1e7,
    clamp_factor: 2,
  });
  const o2 = run2.outputs as any;
  const lowest = Math.min(...wide.flatMap((n) => GRID(n)));
  assert.equal(o2.lr, lowest / 2);
  assert.ok(o2.decision.clamped, 'clamped');
  assert.ok(o2.warnings.some((w: string) => w.startsWith('CLAMP: final learning rate')));
});

test('lr-law stage: a sweep run that missed its target L0 is kept and flagged', async () => {
  const widths = [64, 128, 256];
  const d_sae = widths.flatMap((n) => GRID(n).map(() => n));
  const run = await runStageDirect(lrLawStage, {
    d_sae,
    lr: widths.flatMap((n) => GRID(n)),
    loss: widths.flatMap((n) => GRID(n).map((l) => loss(n, l))),
    on_target: d_sae.map((_, i) => i !== 2),
    predict_at: 512,
  });
  const o = run.outputs as any;
  const flags = o.warnings.filter((w: string) => w.startsWith('OFF TARGET: d_sae 64'));
  assert.equal(flags.length, 1, o.warnings.join('\n'));
  assert.ok(readFileSync(join(run.outDir, 'fit.json'), 'utf8').includes('OFF TARGET: d_sae 64'));
});
