/**
 * The prediction check: the Chinchilla law at the final run's (N, effective D), its interval from
 * the fit's bootstrap refits, and the verdict (inside, outside, no interval, not identified).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitLaw, type PredictPoint } from '../../src/fit/fit.js';
import { effectiveData } from '../../src/fit/repetition.js';
import { checkPrediction, type FinalPoint } from '../../src/report/prediction-check.js';

const law = (N: number, D: number) => 0.02 + 3 * N ** -0.8 + 40 * D ** -0.5;
const U = 3e5;

/** A Chinchilla fit with a repetition model on a 4 x 4 grid with 2% deterministic scatter, as fit-law writes it. */
function chinchillaFit(identified = true, predictAt: PredictPoint[] = []) {
  const points = [32, 64, 128, 256].flatMap((N) =>
    [3.2e4, 6.4e4, 1.28e5, 5.12e5].map((D, j) => ({
      N,
      D,
      U: Math.min(D, U),
      y: law(N, effectiveData(D, U, 15.4)) * (1 + 0.02 * Math.sin(N + 3 * j)),
      kept: true,
      source: `N=${N} D=${D}`,
    })),
  );
  const fit = fitLaw(points, {
    law: 'chinchilla',
    bootstrap: 40,
    repetition: { rStar: 15.4, uniqueAvailable: U },
    predictAt,
  }).json;
  // The check reads the fit's verdict; whether these 16 points identify the law is identify.ts's business.
  fit.identification = { ...fit.identification!, identified, reasons: identified ? [] : ['too few points'] };
  return fit;
}

const final = (measured: number): FinalPoint => ({ N: 512, D: 2e6, U, measured, metric: 'fvu' });

test('the law at the final point in effective data, with the interval of its bootstrap refits', () => {
  const fit = chinchillaFit();
  assert.equal(fit.bootstrap_params?.length, (fit.bootstrap as { used: number }).used, 'one parameter set per refit');
  const c = checkPrediction(fit, final(0.05));
  const p = fit.params as Record<string, number>;
  const dEff = effectiveData(2e6, U, 15.4);
  assert.ok(dEff < 2e6, 'repeated vectors count less than fresh ones');
  assert.equal(c.dEffective, dEff);
  const expected = p.E + p.A / 512 ** p.alpha + p.B / dEff ** p.beta;
  assert.ok(Math.abs(c.predicted / expected - 1) < 1e-12, `${c.predicted} vs ${expected}`);
  assert.ok(c.interval && c.interval[0] <= c.predicted && c.predicted <= c.interval[1], JSON.stringify(c.interval));
  assert.equal(c.beyond.N, 2);
});

test("the interval is fit-law's own prediction interval at the same point", () => {
  // Below U vectors the data are fresh: fit-law's predict_at {N, D} and the check evaluate the same D.
  const points = [32, 64, 128, 256].flatMap((N) =>
    [1e4, 2e4, 4e4, 8e4].map((D, j) => ({ N, D, y: law(N, D) * (1 + 0.02 * Math.cos(N + j)), kept: true, source: '' })),
  );
  const out = fitLaw(points, { law: 'chinchilla', bootstrap: 30, predictAt: [{ N: 512, D: 1.6e5 }] });
  const c = checkPrediction(out.json, { N: 512, D: 1.6e5, U: null, measured: 0.1, metric: 'fvu' });
  const p = out.json.predictions![0];
  assert.ok(Math.abs(c.predicted / p.y - 1) < 1e-12);
  assert.ok(Math.abs(c.interval![0] / p.lo! - 1) < 1e-12 && Math.abs(c.interval![1] / p.hi! - 1) < 1e-12);
});

test("with a repetition model too: fit-law's predict_at at the final run's vectors is the check's prediction", () => {
  // Both count the final run's 2e6 vectors (6.7 passes over U) as their effective data.
  const fit = chinchillaFit(true, [{ N: 512, D: 2e6 }]);
  const c = checkPrediction(fit, final(0.05));
  const p = fit.predictions![0];
  assert.equal(p.D_effective, c.dEffective);
  assert.ok(Math.abs(c.predicted / p.y - 1) < 1e-12, `${c.predicted} vs ${p.y}`);
  assert.ok(Math.abs(c.interval![0] / p.lo! - 1) < 1e-12 && Math.abs(c.interval![1] / p.hi! - 1) < 1e-12);
});

test('inside the interval: no warning; outside: a PREDICTION MISSED warning naming the recipe differences', () => {
  const fit = chinchillaFit();
  const base = checkPrediction(fit, final(0.05));
  const [lo, hi] = base.interval!;
  const inside = checkPrediction(fit, final((lo + hi) / 2));
  assert.equal(inside.verdict, 'inside');
  assert.equal(inside.warning, null);
  assert.match(inside.headline, /chinchilla law .* predicts held-out fvu .* at the final run's N = 512, 2e6 vectors/);
  assert.match(inside.headline, /inside the law's 95% interval/);

  const recipe = ['l0_controller_gain 0.005 (fitted runs: 0.02)'];
  const outside = checkPrediction(fit, final(hi * 1.5), recipe);
  assert.equal(outside.verdict, 'outside');
  assert.match(outside.warning!, /^PREDICTION MISSED: .*OUTSIDE|^PREDICTION MISSED: .*outside the law's 95% interval/);
  assert.match(outside.warning!, /l0_controller_gain 0\.005 \(fitted runs: 0\.02\)/);
  assert.ok(outside.notes.some((n) => /recipe differs/.test(n)));
  assert.equal(checkPrediction(fit, final(lo / 1.5)).verdict, 'outside', 'below the interval too');
});

test('no bootstrap: cannot be judged; not identified: not meaningful; both warn', () => {
  const noBoot = { ...chinchillaFit(), bootstrap_params: undefined };
  const c = checkPrediction(noBoot, final(0.05));
  assert.equal(c.verdict, 'no_interval');
  assert.equal(c.interval, null);
  assert.match(c.warning!, /NOT JUDGED: .*cannot be judged: the fit has no bootstrap interval/);

  const unidentified = checkPrediction(chinchillaFit(false), final(0.05));
  assert.equal(unidentified.verdict, 'not_identified');
  assert.match(unidentified.warning!, /NOT MEANINGFUL: .*not meaningful: the law is not identified/);
});
