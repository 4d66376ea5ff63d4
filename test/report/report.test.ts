/**
 * The report stage end to end on fixture files: sections, inline SVG with real marks,
 * extrapolation flag, escaping, Markdown links to SVG files, clear errors on bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import reportStage from '../../src/stages/report.js';
import { allStageTypes } from '../../src/stages/index.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { writeChinchillaFit, writeFixtures, type Fixtures } from './fixtures.js';

function fullParams(fx: Fixtures) {
  return {
    title: 'Scaling study <demo> & "test"',
    budget: fx.budget,
    loss_fits: [fx.lossVsSize, fx.lossVsData],
    lr_fit: fx.lrFit,
    runs: [fx.runs.slice(0, 2), fx.runs.slice(2)], // list of lists, as from two matrix stages
    final_run: fx.finalRun,
    notes: 'Fixture report <script>alert(1)</script>',
  };
}

/** Path data (with coordinates) of every mark of a Vega mark type (area, line, symbol, rule) in an SVG. */
function markPaths(svg: string, type: string): string[] {
  const groups = [...svg.matchAll(new RegExp(`<g class="mark-${type} role-mark[^"]*"[^>]*>([\\s\\S]*?)</g>`, 'g'))];
  return groups.flatMap((g) => [...g[1].matchAll(/<path[^>]* d="(M[-\d.]+,[-\d.]+[^"]*)"/g)].map((m) => m[1]));
}

test('report stage is registered', () => {
  assert.ok(allStageTypes.some((s) => s.name === 'report'));
});

test('full report: sections, inline SVG plots with marks, warnings, markdown links', async () => {
  const fx = writeFixtures(mkdtempSync(join(tmpdir(), 'report-fx-')));
  const run = await runStageDirect(reportStage, fullParams(fx));
  assert.deepEqual(run.outputs, { html: 'report.html', markdown: 'report.md', plots: 'plots' });
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  const md = readFileSync(join(run.outDir, 'report.md'), 'utf8');

  for (const id of [
    'summary',
    'warnings',
    'scaling-laws',
    'lr-law',
    'final-sae',
    'flop-budget',
    'training',
    'runs',
    'provenance',
  ]) {
    assert.match(html, new RegExp(`<section id="${id}">`), `section ${id}`);
  }
  // Self-contained: no scripts, no external resources.
  assert.doesNotMatch(html, /<script|<link|src="http|href="http/i);
  // Text from inputs is escaped.
  assert.ok(html.includes('Scaling study &lt;demo&gt; &amp; &quot;test&quot;'));
  assert.ok(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(html.includes('CPU &lt;sizes&gt; &amp; &quot;quotes&quot;'));

  // 6 plots inline: two loss laws, the lr law, sweep curves, final curves and the L0/FVU frontier.
  const svgs = html.match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 6);
  const files = readdirSync(join(run.outDir, 'plots')).sort();
  assert.deepEqual(files, [
    'frontier.svg',
    'loss-vs-d_sae.svg',
    'loss-vs-n_samples.svg',
    'lr-law.svg',
    'training-final.svg',
    'training-runs.svg',
  ]);
  for (const f of files) assert.ok(md.includes(`![`) && md.includes(`(plots/${f})`), `markdown links ${f}`);

  // The loss-vs-size plot draws the band (area), the law (line) and the points (symbols).
  const sizePlot = readFileSync(join(run.outDir, 'plots', 'loss-vs-d_sae.svg'), 'utf8');
  assert.ok(markPaths(sizePlot, 'area').length >= 1, 'band drawn');
  assert.ok(markPaths(sizePlot, 'line').length >= 1, 'law drawn');
  const pointCount = markPaths(sizePlot, 'symbol').length;
  assert.equal(pointCount, 4 + 1, '4 fitted points + 1 prediction drawn as symbols');
  const lineD = markPaths(sizePlot, 'line')[0];
  assert.ok((lineD.match(/L/g) ?? []).length >= 30, 'law line has the curve points');
  assert.match(sizePlot, /runs dropped from the fit/);
  assert.match(sizePlot, /dictionary width d_sae \(latents\)/);

  // Training curves: one line per run (4 sweep runs x 4 metrics).
  const training = readFileSync(join(run.outDir, 'plots', 'training-runs.svg'), 'utf8');
  assert.equal(markPaths(training, 'line').length, 16);
  for (let i = 0; i < 4; i++) assert.ok(training.includes(`small[d_sae=${[64, 128, 256, 512][i]},lr=3e-4]`));

  // Extrapolation (4096 / 512 = 8x) is flagged; fit and budget warnings are carried.
  assert.match(html, /EXTRAPOLATION: the prediction at d_sae = 4096 is 8×/);
  assert.match(html, /⚠ far beyond fitted range/);
  assert.match(html, /point d_sae=64 dropped/);
  assert.match(html, /exceeds the dataset/);
  assert.match(md, /EXTRAPOLATION/);

  // Final SAE metrics and provenance.
  assert.match(html, /ground-truth recovery: mean max cosine<\/td><td>0\.93/);
  assert.match(html, /training backend<\/td><td>wasm/);
  assert.match(html, new RegExp(`<td>node</td><td>${process.version}`));
  assert.match(html, /@tensorflow\/tfjs<\/td><td>\d+\.\d+\.\d+/);
  assert.match(html, /vega \/ vega-lite \(plots\)<\/td><td>\d+\.\d+\.\d+ \/ \d+\.\d+\.\d+/);
  assert.match(md, /\| FLOPs \| GPU hours \|/);
  assert.match(md, /2\.52e18/);
});

test('provenance from ctx: pipeline digest and lock entries', async () => {
  const fx = writeFixtures(mkdtempSync(join(tmpdir(), 'report-fx-')));
  const { buildReport } = await import('../../src/report/build.js');
  const out = mkdtempSync(join(tmpdir(), 'report-out-'));
  await buildReport({ title: 'p', lr_fit: fx.lrFit }, out, tmpdir(), {
    pipelineFile: '/x/pipelines/demo.yaml',
    pipelineDigest: 'ab'.repeat(32),
    key: 'cd'.repeat(32),
    upstream: [{ instance: 'small[d_sae=64]', uses: 'train-sae', version: '3', key: 'ef'.repeat(32) }],
  });
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok(html.includes('/x/pipelines/demo.yaml'));
  assert.ok(html.includes('ab'.repeat(32)));
  assert.match(html, /<td>small\[d_sae=64\]<\/td><td>train-sae<\/td><td>3<\/td><td>(ef)+<\/td>/);
});

test('minimal report: title only still renders every always-present section', async () => {
  const run = await runStageDirect(reportStage, { title: 'Empty' });
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /<h1>Empty<\/h1>/);
  assert.match(html, /No warnings/);
  assert.match(html, /not given \(stage run outside a pipeline\)/);
  assert.ok(existsSync(join(run.outDir, 'plots')));
  assert.doesNotMatch(html, /<svg/);
});

test('final_eval param wins over the final run eval line; null recovery reads n/a', async () => {
  const fx = writeFixtures(mkdtempSync(join(tmpdir(), 'report-fx-')));
  const run = await runStageDirect(reportStage, {
    title: 't',
    final_run: fx.finalRun,
    final_eval: {
      mse: 0.0123,
      l0: 33,
      fvu: 0.2,
      dead_frac: 0,
      recovery_mean_max_cos: null,
      recovery_frac_above_0_9: null,
    },
  });
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /reconstruction MSE \(per vector, normalised units\)<\/td><td>0\.0123/);
  assert.match(html, /ground-truth recovery: mean max cosine<\/td><td>n\/a \(no ground truth\)/);
});

test('bad inputs: clear errors naming the file, line and field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-bad-'));
  const badFit = join(dir, 'fit.json');
  writeFileSync(badFit, JSON.stringify({ law: 'power', params: { a: 1 }, points: [{ x: 1, y: 'high', kept: true }] }));
  await assert.rejects(
    runStageDirect(reportStage, { title: 't', loss_fits: [badFit] }),
    (e: Error) => e.message.includes(badFit) && e.message.includes('points[0]') && e.message.includes('"y"'),
  );
  const badRun = join(dir, 'metrics.jsonl');
  writeFileSync(badRun, '{"type":"config","instance":"a"}\n{"type":"train","step":1\n');
  await assert.rejects(
    runStageDirect(reportStage, { title: 't', runs: [badRun] }),
    (e: Error) => e.message.includes(badRun) && e.message.includes('line 2'),
  );
  await assert.rejects(runStageDirect(reportStage, { title: 't', lr_fit: join(dir, 'missing.json') }), /not found/);
  await assert.rejects(runStageDirect(reportStage, { notes: 'no title' }), /title/);
});

test('relative input paths are resolved against the pipeline folder and declared as input files', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-rel-'));
  writeFixtures(join(dir, 'fx'));
  const params = { title: 'rel', lr_fit: 'fx/fit-lr/fit.json', runs: ['fx/small-64/metrics.jsonl'] };
  assert.deepEqual(reportStage.inputFiles!(params as never), ['fx/fit-lr/fit.json', 'fx/small-64/metrics.jsonl']);
  const run = await runStageDirect(reportStage, params, { pipelineDir: dir });
  assert.ok(existsSync(join(run.outDir, 'plots', 'lr-law.svg')));
});

test('chinchilla fit: loss against D coloured by N, a curve per N, null intervals, N/D predictions', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-chin-'));
  const fit = writeChinchillaFit(dir);
  const budget = {
    table: [{ item: 'data budget', flops: null, hours: null, note: 'no FLOPs on this row' }],
    warnings: [],
  };
  const run = await runStageDirect(reportStage, { title: 'chinchilla', loss_fits: [fit], budget });
  const svg = readFileSync(join(run.outDir, 'plots', 'loss-vs-N.svg'), 'utf8');
  assert.equal(markPaths(svg, 'symbol').length, 9, 'nine (N, D) points');
  assert.equal(markPaths(svg, 'line').length, 3, 'one law curve per N');
  assert.match(svg, /role-legend-gradient/, 'N as a colour bar, not a list');
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /Loss against N and D/);
  assert.match(html, /<td>N = 7e10, D = 1\.4e12<\/td><td>[\d.]+<\/td><td>—<\/td><td>43\.75× ⚠ far beyond fitted range/);
  assert.match(html, /<td>alpha<\/td><td>0\.35<\/td><td>—<\/td>/);
  assert.match(html, /<td>data budget<\/td><td>—<\/td><td>—<\/td>/);
});

test('reads what the real fit-law and flop-budget stages write', async () => {
  const { default: fitLaw } = await import('../../src/stages/fit-law.js');
  const { default: flopBudget } = await import('../../src/stages/flop-budget.js');
  const widths = [256, 512, 1024];
  const lrs = [1e-4, 3e-4, 1e-3];
  // lr sweep: every (width, lr) point; select_min_by keeps the best lr per width.
  const lossOf = (w: number, lr: number) => Math.abs(Math.log(lr / (0.01 * w ** -0.5))) + 1;
  const lr = await runStageDirect(fitLaw, {
    law: 'power',
    x: widths.flatMap((w) => lrs.map(() => w)),
    y: widths.flatMap(() => lrs),
    select_min_by: widths.flatMap((w) => lrs.map((l) => lossOf(w, l))),
    predict_at: [16384],
    x_label: 'd_sae',
    y_label: 'lr',
    bootstrap: 50,
  });
  const size = await runStageDirect(fitLaw, {
    law: 'power_plus_constant',
    x: widths,
    y: widths.map((w) => 0.05 + 2 * w ** -0.5),
    predict_at: [16384],
    x_label: 'd_sae',
    y_label: 'loss',
    bootstrap: 20,
  });
  const budget = await runStageDirect(flopBudget, { small_runs: [{ d_sae: widths, n_samples: [1e6] }] });
  const run = await runStageDirect(reportStage, {
    title: 'real upstream formats',
    loss_fits: [join(size.outDir, size.outputs.fit as string)],
    lr_fit: join(lr.outDir, lr.outputs.fit as string),
    budget: budget.outputs.budget as Record<string, unknown>,
  });
  const lrSvg = readFileSync(join(run.outDir, 'plots', 'lr-law.svg'), 'utf8');
  assert.equal(markPaths(lrSvg, 'symbol').length, 9 + 1, 'all 9 sweep points (3 best kept) + the prediction');
  assert.match(lrSvg, /runs not best at their x/);
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /EXTRAPOLATION: the prediction at d_sae = 16384/);
  assert.match(html, /<td>final SAE \(6 \* 2 d_in d_sae D\)<\/td><td>8\.45\de17<\/td>/);
});

test('a fit with a diverged run (null loss) renders, and its warning reaches the report', async () => {
  const fitLaw = allStageTypes.find((t) => t.name === 'fit-law')!;
  // The learning-rate law as scaling.yaml asks for it: one sweep point diverged (loss null).
  const fit = await runStageDirect(fitLaw, {
    law: 'power',
    x: [64, 64, 128, 128, 256, 256],
    y: [1e-3, 3e-3, 1e-3, 3e-3, 1e-3, 3e-3],
    select_min_by: [0.5, 0.4, 0.45, null, 0.3, 0.35],
    bootstrap: 0,
  });
  const loss = await runStageDirect(fitLaw, {
    law: 'power',
    x: [64, 128, 256, 512],
    y: [0.5, null, 0.3, 0.25],
    bootstrap: 0,
  });
  assert.ok((loss.outputs.warnings as string[]).some((w) => /without a value/.test(w)));
  const run = await runStageDirect(reportStage, {
    title: 'diverged',
    loss_fits: [join(loss.outDir, 'fit.json')],
    lr_fit: join(fit.outDir, 'fit.json'),
  });
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /without a value/);
});

test('decisions, fallbacks, clamps and dead latents are stated in both documents', async () => {
  const { decide } = await import('../../src/fit/decide.js');
  const lr = decide({
    name: 'final learning rate',
    lawValue: 0.5,
    identified: true,
    reasons: [],
    fallback: 1e-3,
    fallbackRule: 'largest width',
    clamp: { min: 1e-4, max: 0.02, rule: 'within a factor 2 of the swept lr range' },
  });
  const data = decide({
    name: 'final data size (vectors)',
    lawValue: 3e12,
    identified: false,
    reasons: ['condition number 5e4 > 1e3'],
    fallback: 2.1e9,
    fallbackRule: "the FLOP budget's data budget",
  });
  const run = await runStageDirect(reportStage, {
    title: 'decisions',
    decisions: [lr, data],
    final_eval: { mse: 0.1, l0: 4, fvu: 0.2, dead_frac: 0.62 },
    dead_warning: 0.1,
  });
  const md = readFileSync(join(run.outDir, 'report.md'), 'utf8');
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  for (const doc of [md, html]) {
    assert.match(doc, /Decisions: what the final run used/);
    assert.match(doc, /CLAMP: final learning rate 0\.5 clamped to 0\.02/);
    assert.match(doc, /FALLBACK: final data size \(vectors\) = 2\.100e\+9/);
    assert.match(doc, /DEAD LATENTS: 62% of the latents never fired/);
  }
});

test('ground truth: a final SAE that recovers fewer true features than recovery_warning asks is flagged', async () => {
  const low = await runStageDirect(reportStage, {
    title: 'recovery',
    final_eval: { mse: 0.05, l0: 4, fvu: 0.05, recovery_frac_above_0_9: 0.836, recovery_mean_max_cos: 0.928 },
  });
  for (const doc of ['report.md', 'report.html'].map((f) => readFileSync(join(low.outDir, f), 'utf8'))) {
    assert.match(
      doc,
      /LOW RECOVERY: the final SAE recovers 83\.6% of the true features \(max cosine &gt; 0\.9|LOW RECOVERY: the final SAE recovers 83\.6% of the true features \(max cosine > 0\.9/,
    );
    assert.match(doc, /threshold 90%\); mean max cosine 0\.928/);
  }
  // At the threshold, and without ground truth (real activations), nothing is said.
  for (const final_eval of [
    { mse: 0.05, l0: 4, fvu: 0.05, recovery_frac_above_0_9: 0.9, recovery_mean_max_cos: 0.97 },
    { mse: 0.05, l0: 4, fvu: 0.05 },
  ]) {
    const ok = await runStageDirect(reportStage, { title: 'recovery', final_eval });
    assert.doesNotMatch(readFileSync(join(ok.outDir, 'report.md'), 'utf8'), /LOW RECOVERY/);
  }
});

test('prediction check: the Chinchilla law at the final run beside its measurement, with the recipe it differs in', async () => {
  const { effectiveData } = await import('../../src/fit/repetition.js');
  const fitLaw = allStageTypes.find((t) => t.name === 'fit-law')!;
  const dir = mkdtempSync(join(tmpdir(), 'report-check-'));
  const U = 3e5;
  const law = (N: number, D: number) => 0.1 + 3 * N ** -0.8 + 40 * effectiveData(D, U, 15.4) ** -0.5;
  const small = [32, 64, 128, 256].flatMap((N) =>
    [3.2e4, 6.4e4, 1.28e5, 5.12e5].map((D, j) => ({ N, D, y: law(N, D) * (1 + 0.005 * Math.sin(N + 3 * j)) })),
  );
  const fit = await runStageDirect(fitLaw, {
    law: 'chinchilla',
    N: small.map((p) => p.N),
    D: small.map((p) => p.D),
    U: small.map((p) => Math.min(p.D, U)),
    y: small.map((p) => p.y),
    unique_available: U,
    bootstrap: 30,
    x_label: 'd_sae (features)',
    y_label: 'held-out FVU at matched L0',
    max_exponent_width: 100, // the check reads the fit's verdict; these points need not pass the default rule
    max_interval_ratio: 1e6,
    max_condition: 1e9,
  });
  assert.equal(fit.outputs.identified, true, JSON.stringify(fit.outputs.identification));
  const runFile = (name: string, N: number, D: number, fvu: number, gain: number) => {
    const lines = [
      { type: 'config', instance: name, d_sae: N, n_samples: D, batch_size: 64, lr: 0.01, l0_controller_gain: gain },
      { type: 'eval', step: D / 64, mse: fvu, l0: 4, fvu, dead_frac: 0 },
      { type: 'run', train_rows: U, unique_samples: Math.min(D, U), passes: D / U, target_l0: 4, l0_tolerance: 0.1 },
    ].map((l) => ({ lambda_end: 0.01, resampled: 0, l0_within_tolerance: true, ...l }));
    const path = join(dir, name, 'metrics.jsonl');
    mkdirSync(join(dir, name), { recursive: true });
    writeFileSync(path, lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
    return path;
  };
  const runs = small.map((p) => runFile(`small-${p.N}-${p.D}`, p.N, p.D, p.y, 0.02));
  const report = async (measured: number) => {
    const final = runFile('final', 512, 2e6, measured, 0.005);
    const r = await runStageDirect(reportStage, {
      title: 'check',
      loss_fits: [join(fit.outDir, 'fit.json')],
      runs,
      final_run: final,
    });
    // The same sentences in both documents; the HTML writes ' as &#39;.
    return ['report.html', 'report.md'].map((f) => readFileSync(join(r.outDir, f), 'utf8').replace(/&#39;/g, "'"));
  };
  const predicted = law(512, 2e6);
  for (const doc of await report(predicted)) {
    assert.match(doc, /Prediction check: the law against the final run/);
    assert.match(
      doc,
      /The chinchilla law fitted on the small runs predicts held-out fvu [\d.]+ 95% \[[\d.]+, [\d.]+\]/,
    );
    assert.match(
      doc,
      /at the final run's d\\?_sae \(features\) = 512, 2e6 vectors \(6\.667 passes over 300000 unique: effective data/,
    );
    assert.match(doc, /inside the law's 95% interval/);
    assert.match(doc, /recipe differs from the fitted runs' .*l0\\?_controller\\?_gain 0\.005 \(fitted runs: 0\.02\)/);
    assert.match(doc, /6\.667 passes over the data \(fitted runs: at most 1\.707\)/);
    assert.doesNotMatch(doc, /PREDICTION MISSED/);
  }
  for (const doc of await report(predicted * 3)) {
    assert.match(
      doc,
      /PREDICTION MISSED: the chinchilla law .* measured [\d.]+ \([\d.]+× the prediction\), outside the law's 95% interval/,
    );
    assert.match(doc, /prediction check \(chinchilla law\) at the final run.*⚠ OUTSIDE the interval/);
  }
});

test('a chinchilla prediction in vectors states its passes and the effective data the law saw', async () => {
  const { default: fitLaw } = await import('../../src/stages/fit-law.js');
  const { effectiveData } = await import('../../src/fit/repetition.js');
  const U = 1e5;
  const Ns = [32, 64, 128, 256];
  const Ds = [2.5e4, 5e4, 1e5, 2e5, 4e5];
  const fit = await runStageDirect(fitLaw, {
    law: 'chinchilla',
    N: Ns.flatMap((n) => Ds.map(() => n)),
    D: Ns.flatMap(() => Ds),
    U: Ns.flatMap(() => Ds.map((d) => Math.min(d, U))),
    y: Ns.flatMap((n) => Ds.map((d) => 0.05 + 3 * n ** -0.5 + 40 * effectiveData(d, U, 15.4) ** -0.4)),
    unique_available: U,
    predict_at: [{ N: 512, D: 5e6 }],
    grid: { alpha: [0.5], beta: [0.5], e: [-2], a: [1], b: [3] },
    bootstrap: 0,
    x_label: 'd_sae',
  });
  const run = await runStageDirect(reportStage, {
    title: 'repeated data',
    loss_fits: [join(fit.outDir, fit.outputs.fit as string)],
  });
  const html = readFileSync(join(run.outDir, 'report.html'), 'utf8');
  assert.match(html, /<td>d_sae = 512, D = 5e6 \(50 passes: effective data 1\.576e6\)<\/td>/);
});
