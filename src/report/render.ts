/**
 * Renders the report as one self-contained HTML file (inline CSS, inline SVG plots, no
 * script, no network) and as a Markdown summary that links the same plots as SVG files.
 *
 * Both renderers read the same ReportModel, so the two documents cannot disagree.
 * Every piece of text that comes from inputs is escaped (HTML entities in the HTML;
 * code spans or entity/pipe escapes in the Markdown).
 */
import type { EvalRecord, LoadedFit, LoadedRun, ReportInputs } from './inputs.js';
import type { DecisionRecord, FitFile, PredictionRecord } from '../formats/fit.js';
import type { RunRecord } from '../formats/metrics.js';
import { EXTRAPOLATION_FLAG, formatNumber } from './plots.js';
import type { PredictionCheck } from './prediction-check.js';

export interface RenderedPlot {
  name: string; // file name under plots/, e.g. "loss-vs-d_sae.svg"
  title: string;
  svg: string;
}

export interface ReportWarning {
  source: string;
  message: string;
}

export interface ReportModel {
  inputs: ReportInputs;
  /** Plots per section, in display order. */
  fitPlots: Array<{ fit: LoadedFit; plot: RenderedPlot }>;
  lrPlot: { fit: LoadedFit; plot: RenderedPlot } | null;
  trainingPlots: RenderedPlot[];
  /** FVU against L0 of every run: the sparsity / fidelity frontier. */
  frontierPlot: RenderedPlot | null;
  /** The laws' predictions at the final run beside its measurement (prediction-check.ts). */
  checks: PredictionCheck[];
  warnings: ReportWarning[];
  plotLibrary: { vega: string; vegaLite: string };
}

// ---------------------------------------------------------------------------------------
// Warnings gathered from every input
// ---------------------------------------------------------------------------------------

export function collectWarnings(inputs: ReportInputs, checks: PredictionCheck[] = []): ReportWarning[] {
  const out: ReportWarning[] = [];
  for (const c of checks) if (c.warning) out.push({ source: `prediction check (${c.law} law)`, message: c.warning });
  for (const d of inputs.decisions) for (const w of d.warnings) out.push({ source: `decision: ${d.name}`, message: w });
  const fits = [...inputs.lossFits, ...(inputs.lrFit ? [inputs.lrFit] : [])];
  for (const { fit } of fits) {
    const source = `fit ${fit.y_label ?? 'y'} vs ${fit.x_label ?? 'x'}`;
    for (const w of fit.warnings ?? []) out.push({ source, message: w });
    for (const p of fit.predictions ?? []) {
      if ((p.extrapolation ?? 0) > EXTRAPOLATION_FLAG) {
        out.push({
          source,
          message:
            `EXTRAPOLATION: the prediction at ${predictionAt(fit, p)} is ` +
            `${formatNumber(p.extrapolation)}× the largest fitted value; ` +
            `the law is untested there (predicted ${fit.y_label ?? 'y'} = ${formatNumber(p.y)}).`,
        });
      }
    }
  }
  for (const w of inputs.budget?.warnings ?? []) out.push({ source: 'FLOP budget', message: w });
  for (const run of [...inputs.runs, ...(inputs.finalRun ? [inputs.finalRun] : [])]) {
    if (!run.config)
      out.push({ source: run.path, message: 'metrics file has no config line; run labelled by its folder name' });
    if (!run.eval) out.push({ source: run.label, message: 'run has no eval record (unfinished or crashed?)' });
    if (run.run?.l0_within_tolerance === false) {
      out.push({
        source: run.label,
        message:
          `held-out L0 ${formatNumber(run.eval?.l0 as number)} is outside the tolerance of its ` +
          `target_l0 ${formatNumber(run.run.target_l0 as number)}`,
      });
    }
  }
  out.push(...deadLatentWarnings(inputs));
  out.push(...recoveryWarnings(inputs));
  return out;
}

/** Synthetic data only (an eval with ground-truth recovery): a final SAE that misses true features. */
function recoveryWarnings(inputs: ReportInputs): ReportWarning[] {
  const recovered = inputs.finalEval?.recovery_frac_above_0_9;
  if (typeof recovered !== 'number' || recovered >= inputs.recoveryWarning) return [];
  const meanCos = inputs.finalEval?.recovery_mean_max_cos;
  return [
    {
      source: 'final SAE',
      message:
        `LOW RECOVERY: the final SAE recovers ${formatNumber(100 * recovered)}% of the true features (max cosine > 0.9; ` +
        `threshold ${formatNumber(100 * inputs.recoveryWarning)}%)` +
        (typeof meanCos === 'number' ? `; mean max cosine ${formatNumber(meanCos)}` : ''),
    },
  ];
}

/** Runs whose held-out dead-latent fraction is above the threshold: the final run by name, the others counted. */
function deadLatentWarnings(inputs: ReportInputs): ReportWarning[] {
  const limit = inputs.deadWarning;
  const dead = (ev: EvalRecord | null | undefined) => (typeof ev?.dead_frac === 'number' ? ev.dead_frac : null);
  const out: ReportWarning[] = [];
  const finalDead = dead(inputs.finalEval);
  if (finalDead !== null && finalDead > limit) {
    out.push({
      source: 'final SAE',
      message:
        `DEAD LATENTS: ${formatNumber(100 * finalDead)}% of the latents never fired on the held-out rows ` +
        `(threshold ${formatNumber(100 * limit)}%); a remedy: train-sae resample_dead_every`,
    });
  }
  const flagged = inputs.runs.filter((r) => (dead(r.eval) ?? 0) > limit);
  if (flagged.length) {
    out.push({
      source: 'sweep runs',
      message:
        `DEAD LATENTS: ${flagged.length} of ${inputs.runs.length} runs have more than ` +
        `${formatNumber(100 * limit)}% dead latents on the held-out rows (${flagged
          .map((r) => r.label)
          .slice(0, 6)
          .join(', ')}${flagged.length > 6 ? ', ...' : ''})`,
    });
  }
  return out;
}

/** Where a prediction is: `d_sae = 4096`, or `N = 1e9, D = 2e10` for a chinchilla fit. */
function predictionAt(fit: FitFile, p: PredictionRecord): string {
  if (typeof p.x === 'number') return `${fit.x_label ?? 'x'} = ${formatNumber(p.x)}`;
  const at = `${fit.x_label ?? 'N'} = ${formatNumber(p.N)}, ${fit.d_label ?? 'D'} = ${formatNumber(p.D)}`;
  // With a repetition model the law saw the vectors' effective data, as the prediction check says.
  return typeof p.passes === 'number' && p.D_effective !== p.D
    ? `${at} (${formatNumber(p.passes)} passes: effective data ${formatNumber(p.D_effective)})`
    : at;
}

/** `[lo, hi]`, or '—' when the fit has no interval there (no bootstrap). */
function intervalText(lo: number | null | undefined, hi: number | null | undefined): string {
  return typeof lo === 'number' && typeof hi === 'number' ? `[${formatNumber(lo)}, ${formatNumber(hi)}]` : '—';
}

// ---------------------------------------------------------------------------------------
// Shared tables (rows of plain strings; each renderer escapes them)
// ---------------------------------------------------------------------------------------

type Table = { head: string[]; rows: string[][] };

const EVAL_LABELS: Record<string, string> = {
  step: 'evaluated at step',
  rows: 'held-out rows evaluated',
  loss: 'held-out loss (MSE + λ·L0)',
  total_loss: 'held-out loss (MSE + λ·L0)',
  mse: 'reconstruction MSE (per vector, normalised units)',
  l0: 'L0 (active latents per vector)',
  fvu: 'FVU (fraction of variance unexplained)',
  dead_frac: 'dead latents (fraction)',
  recovery_mean_max_cos: 'ground-truth recovery: mean max cosine',
  recovery_frac_above_0_9: 'ground-truth features recovered (max cosine > 0.9)',
};

export function evalTable(ev: EvalRecord): Table {
  const rows = Object.entries(ev)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => [
      EVAL_LABELS[k] ?? k,
      v === null ? 'n/a (no ground truth)' : typeof v === 'number' ? formatNumber(v) : String(v),
    ]);
  return { head: ['metric', 'value'], rows };
}

export function fitParamsTable(fit: LoadedFit['fit']): Table {
  const conf = Math.round((fit.confidence ?? 0.95) * 100);
  const rows = Object.entries(fit.params).map(([k, v]) => {
    const iv = fit.intervals?.[k];
    return [k, formatNumber(v), intervalText(iv?.[0], iv?.[1])];
  });
  return { head: ['parameter', 'value', `${conf}% interval`], rows };
}

export function fitSummaryLine(fit: LoadedFit['fit']): string {
  const kept = fit.points.filter((p) => p.kept).length;
  const g = fit.goodness ?? {};
  // fit.formula is the law's symbolic form; the fitted values are in the parameter table.
  return (
    `law ${fit.law}: ${fit.formula ?? ''}; ${kept} of ${fit.points.length} points kept; ` +
    `R² = ${formatNumber(g.r2)}, RMSE(log) = ${formatNumber(g.rmse_log)}`
  );
}

/** Whether the law is identified, in one line (empty for fits made before the check existed). */
export function identificationLine(fit: FitFile): string {
  const id = fit.identification;
  if (!id) return '';
  const cond = `condition number ${formatNumber(id.condition_number)}`;
  const design = id.design_warnings?.length ? ` Design: ${id.design_warnings.join('; ')}.` : '';
  return (
    (id.identified
      ? `Identified (${cond}; ${id.rule ?? ''}).`
      : `NOT identified (${cond}): ${id.reasons.join('; ')}.`) + design
  );
}

/** lr-law: per width, the swept best, the parabola optimum with its interval, and edges. */
export function optimaTable(fit: FitFile): Table | null {
  if (!fit.optima?.length) return null;
  const rows = fit.optima.map((o) => [
    formatNumber(o.width),
    formatNumber(o.best_swept),
    formatNumber(o.optimum),
    intervalText(o.interval?.[0], o.interval?.[1]),
    o.edge ? `⚠ ${o.edge} edge` : '',
    o.note ?? '',
  ]);
  return { head: ['d_sae', 'best swept lr', 'optimum (parabola in log lr)', 'interval', 'edge', 'note'], rows };
}

/** The values the final run used: from a law or from a stated fallback, clamped or not. */
export function decisionsTable(decisions: DecisionRecord[]): Table | null {
  if (!decisions.length) return null;
  const rows = decisions.map((d) => [
    d.name,
    formatNumber(d.value),
    d.source === 'law' ? 'law' : `⚠ fallback: ${d.fallback_rule}`,
    formatNumber(d.law_value),
    d.identified ? 'yes' : 'no',
    d.clamped ? `⚠ ${formatNumber(d.clamped.from)} → ${formatNumber(d.clamped.to)} (${d.clamped.rule})` : 'no',
    typeof d.passes === 'number' ? formatNumber(d.passes) : '—',
  ]);
  return { head: ['decision', 'value used', 'source', "law's value", 'law identified', 'clamped', 'passes'], rows };
}

export function predictionsTable(fit: LoadedFit['fit']): Table {
  const rows = (fit.predictions ?? []).map((p) => {
    const far = (p.extrapolation ?? 0) > EXTRAPOLATION_FLAG;
    return [
      predictionAt(fit, p),
      formatNumber(p.y),
      intervalText(p.lo, p.hi),
      `${formatNumber(p.extrapolation)}×${far ? ' ⚠ far beyond fitted range' : ''}`,
    ];
  });
  return { head: ['at', `predicted ${fit.y_label ?? 'y'}`, 'interval', 'distance: at / max fitted'], rows };
}

export function budgetTable(inputs: ReportInputs): Table | null {
  if (!inputs.budget) return null;
  const rows = inputs.budget.table.map((r) => [
    r.item,
    formatNumber(r.flops),
    r.hours === null || r.hours === undefined ? '—' : formatNumber(r.hours),
    r.note ?? '',
  ]);
  return { head: ['item', 'FLOPs', 'GPU hours', 'note'], rows };
}

export function runsTable(runs: LoadedRun[]): Table {
  const cfg = (r: LoadedRun, k: string) => {
    const v = r.config?.[k];
    return typeof v === 'number' ? formatNumber(v) : typeof v === 'string' ? v : '—';
  };
  const ev = (r: LoadedRun, k: string) => {
    const v = r.eval?.[k];
    return typeof v === 'number' ? formatNumber(v) : '—';
  };
  const lambda = (r: LoadedRun) => (r.config?.lambda !== undefined ? cfg(r, 'lambda') : cfg(r, 'l1_coefficient'));
  const run = (r: LoadedRun, k: keyof RunRecord) => {
    const v = r.run?.[k];
    return typeof v === 'number' ? formatNumber(v) : '—';
  };
  const rows = runs.map((r) => [
    r.label,
    cfg(r, 'd_sae'),
    cfg(r, 'n_samples'),
    run(r, 'passes'),
    cfg(r, 'steps'),
    cfg(r, 'lr'),
    typeof r.run?.lambda_end === 'number' ? formatNumber(r.run.lambda_end) : lambda(r),
    run(r, 'target_l0'),
    ev(r, 'mse'),
    ev(r, 'l0'),
    ev(r, 'fvu'),
    ev(r, 'dead_frac'),
  ]);
  return {
    head: [
      'run',
      'd_sae',
      'vectors',
      'passes',
      'steps',
      'lr',
      'λ (end)',
      'target L0',
      'eval MSE',
      'eval L0',
      'eval FVU',
      'dead',
    ],
    rows,
  };
}

export function provenanceTables(model: ReportModel): { facts: Table; upstream: Table | null } {
  const { inputs, plotLibrary } = model;
  const p = inputs.provenance;
  const v = inputs.versions;
  const facts: Table = {
    head: ['item', 'value'],
    rows: [
      ['pipeline file', p?.pipelineFile ?? 'not given (stage run outside a pipeline)'],
      ['pipeline digest (sha256)', p?.pipelineDigest ?? '—'],
      ['report cache key', p?.key ?? '—'],
      ['training backend', inputs.backend ?? 'unknown (no run config names one)'],
      ['node', v.node],
      ['package', v.package],
      ['@tensorflow/tfjs', v.tfjs ?? 'not installed'],
      ['vega / vega-lite (plots)', `${plotLibrary.vega} / ${plotLibrary.vegaLite}`],
    ],
  };
  const upstream = p
    ? {
        head: ['instance', 'type', 'version', 'cache key'],
        rows: p.upstream.map((u) => [u.instance, u.uses, u.version, u.key]),
      }
    : null;
  return { facts, upstream };
}

// ---------------------------------------------------------------------------------------
// HTML
// ---------------------------------------------------------------------------------------

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

function htmlTable(t: Table, cls = ''): string {
  const head = t.head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const rows = t.rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${head}</tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

function htmlFigure(plot: RenderedPlot): string {
  return (
    `<figure id="plot-${escapeHtml(plot.name)}">${plot.svg}<figcaption>${escapeHtml(plot.title)} ` +
    `(also <code>plots/${escapeHtml(plot.name)}</code>)</figcaption></figure>`
  );
}

function htmlFitSection({ fit, plot }: { fit: LoadedFit; plot: RenderedPlot }): string {
  const f = fit.fit;
  const preds = predictionsTable(f);
  const fitWarnings = f.warnings ?? [];
  return [
    htmlFigure(plot),
    `<p class="fit-summary">${escapeHtml(fitSummaryLine(f))}</p>`,
    identificationLine(f) ? `<p class="identification">${escapeHtml(identificationLine(f))}</p>` : '',
    f.repetition
      ? `<p class="repetition">Repetition: ${escapeHtml(f.repetition.model)}; the runs made up to ` +
        `${escapeHtml(formatNumber(f.repetition.max_measured_passes))} passes.</p>`
      : '',
    htmlTable(fitParamsTable(f)),
    optimaTable(f) ? `<h4>Optimum per width</h4>${htmlTable(optimaTable(f)!)}` : '',
    preds.rows.length ? `<h4>Predictions</h4>${htmlTable(preds, 'predictions')}` : '',
    fitWarnings.length
      ? `<ul class="warnings">${fitWarnings.map((w) => `<li>⚠ ${escapeHtml(w)}</li>`).join('')}</ul>`
      : '',
    `<p class="source">source: <code>${escapeHtml(fit.path)}</code></p>`,
  ].join('\n');
}

const CSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;color:#222;
max-width:1100px;margin:2em auto;padding:0 1.5em;line-height:1.45}
h1{font-size:1.9em;margin-bottom:.2em}h2{border-bottom:2px solid #2c3e50;padding-bottom:.2em;margin-top:2em;color:#2c3e50}
h3{margin-top:1.6em}nav ol{columns:2;font-size:.95em}table{border-collapse:collapse;margin:.6em 0;font-size:.92em}
th,td{border:1px solid #ccd;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#eef3fa}
td{font-variant-numeric:tabular-nums}figure{margin:1em 0}figure svg{width:100%;max-width:1050px;height:auto}
figcaption{font-size:.85em;color:#555}.notes{white-space:pre-wrap;background:#f7f7f7;padding:.8em;border-radius:4px}
.warnings{background:#fff4e5;border-left:5px solid #d98c00;padding:.6em 1em .6em 2em;margin:.6em 0}
.warnings li{margin:.25em 0}.ok{color:#31a354}.source{font-size:.8em;color:#666}code{font-size:.9em}
.summary td:first-child{font-weight:600}
`;

export function renderHtml(model: ReportModel): string {
  const { inputs } = model;
  const sections: Array<{ id: string; title: string; body: string }> = [];
  sections.push({ id: 'summary', title: 'Summary', body: htmlSummary(model) });
  sections.push({ id: 'warnings', title: 'Warnings', body: htmlWarnings(model.warnings) });
  const decisions = decisionsTable(inputs.decisions);
  if (decisions)
    sections.push({ id: 'decisions', title: 'Decisions: what the final run used', body: htmlTable(decisions) });
  if (model.checks.length)
    sections.push({
      id: 'prediction-check',
      title: 'Prediction check: the law against the final run',
      body: htmlChecks(model.checks),
    });
  if (model.fitPlots.length) {
    sections.push({
      id: 'scaling-laws',
      title: 'Scaling laws: loss against size and data',
      body: model.fitPlots.map((fp) => `<h3>${escapeHtml(fp.plot.title)}</h3>\n${htmlFitSection(fp)}`).join('\n'),
    });
  }
  if (model.lrPlot) sections.push({ id: 'lr-law', title: 'Learning-rate law', body: htmlFitSection(model.lrPlot) });
  if (model.frontierPlot)
    sections.push({ id: 'frontier', title: 'Sparsity / fidelity frontier', body: htmlFigure(model.frontierPlot) });
  if (inputs.finalEval) {
    sections.push({ id: 'final-sae', title: 'Final SAE', body: htmlFinalSae(inputs) });
  }
  const budget = budgetTable(inputs);
  if (budget) sections.push({ id: 'flop-budget', title: 'FLOP budget', body: htmlBudget(inputs, budget) });
  if (model.trainingPlots.length) {
    sections.push({ id: 'training', title: 'Training curves', body: model.trainingPlots.map(htmlFigure).join('\n') });
  }
  const allRuns = [...inputs.runs, ...(inputs.finalRun ? [inputs.finalRun] : [])];
  if (allRuns.length) sections.push({ id: 'runs', title: 'Runs', body: htmlTable(runsTable(allRuns)) });
  sections.push({ id: 'provenance', title: 'Provenance', body: htmlProvenance(model) });

  const nav = `<nav><ol>${sections.map((s) => `<li><a href="#${s.id}">${escapeHtml(s.title)}</a></li>`).join('')}</ol></nav>`;
  const body = sections
    .map((s) => `<section id="${s.id}">\n<h2>${escapeHtml(s.title)}</h2>\n${s.body}\n</section>`)
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(inputs.title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(inputs.title)}</h1>
${inputs.notes ? `<div class="notes">${escapeHtml(inputs.notes)}</div>` : ''}
${nav}
${body}
</body>
</html>
`;
}

function htmlSummary(model: ReportModel): string {
  const rows = summaryRows(model);
  if (!rows.length) return '<p>No fits, runs or final evaluation were given to this report.</p>';
  return htmlTable({ head: ['what', 'value'], rows }, 'summary');
}

function htmlWarnings(warnings: ReportWarning[]): string {
  if (!warnings.length) return '<p class="ok">No warnings from the fits, the budget or the runs.</p>';
  const items = warnings.map((w) => `<li>⚠ <strong>${escapeHtml(w.source)}</strong>: ${escapeHtml(w.message)}</li>`);
  return `<ul class="warnings">\n${items.join('\n')}\n</ul>`;
}

function htmlChecks(checks: PredictionCheck[]): string {
  return checks
    .map((c) => {
      const cls = c.verdict === 'inside' ? 'ok' : 'warnings';
      const notes = c.notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('');
      return `<p class="${cls} prediction-check">${c.verdict === 'inside' ? '' : '⚠ '}${escapeHtml(c.headline)}</p><ul>${notes}</ul>`;
    })
    .join('\n');
}

function htmlFinalSae(inputs: ReportInputs): string {
  const label = inputs.finalRun ? `<p>Run <code>${escapeHtml(inputs.finalRun.label)}</code>.</p>` : '';
  return label + htmlTable(evalTable(inputs.finalEval!));
}

function htmlBudget(inputs: ReportInputs, table: Table): string {
  const warnings = inputs.budget?.warnings ?? [];
  return (
    htmlTable(table) +
    (warnings.length ? `<ul class="warnings">${warnings.map((w) => `<li>⚠ ${escapeHtml(w)}</li>`).join('')}</ul>` : '')
  );
}

function htmlProvenance(model: ReportModel): string {
  const { facts, upstream } = provenanceTables(model);
  return htmlTable(facts) + (upstream ? `<h3>Lock entries (upstream instances)</h3>${htmlTable(upstream)}` : '');
}

/** The headline numbers: final SAE quality and the extrapolated predictions. */
function summaryRows(model: ReportModel): string[][] {
  const rows: string[][] = [];
  const ev = model.inputs.finalEval;
  if (ev) {
    for (const k of ['fvu', 'l0', 'mse', 'dead_frac', 'recovery_mean_max_cos', 'recovery_frac_above_0_9']) {
      if (ev[k] !== undefined)
        rows.push([`final SAE: ${EVAL_LABELS[k]}`, ev[k] === null ? 'n/a' : formatNumber(ev[k] as number)]);
    }
  }
  const fits = [...model.fitPlots.map((f) => f.fit), ...(model.lrPlot ? [model.lrPlot.fit] : [])];
  for (const { fit } of fits) {
    for (const p of fit.predictions ?? []) {
      const far = (p.extrapolation ?? 0) > EXTRAPOLATION_FLAG ? ' ⚠ extrapolated' : '';
      const iv = intervalText(p.lo, p.hi);
      rows.push([
        `predicted ${fit.y_label ?? 'y'} at ${predictionAt(fit, p)}`,
        `${formatNumber(p.y)}${iv === '—' ? '' : ` ${iv}`}${far}`,
      ]);
    }
  }
  for (const c of model.checks) rows.push([`prediction check (${c.law} law) at the final run`, checkSummary(c)]);
  for (const d of model.inputs.decisions) {
    rows.push([
      `decided: ${d.name}`,
      `${formatNumber(d.value)} (${d.source === 'law' ? 'from the law' : 'FALLBACK'}${d.clamped ? ', CLAMPED' : ''})`,
    ]);
  }
  const runs = model.inputs.runs.length + (model.inputs.finalRun ? 1 : 0);
  if (runs) rows.push(['training runs shown', String(runs)]);
  return rows;
}

/** `predicted 0.04 [0.03, 0.05], measured 0.048: inside` in a summary cell. */
function checkSummary(c: PredictionCheck): string {
  const iv = c.interval ? ` ${intervalText(c.interval[0], c.interval[1])}` : '';
  const verdict = {
    inside: 'inside the interval',
    outside: '⚠ OUTSIDE the interval',
    no_interval: '⚠ cannot be judged (no interval)',
    not_identified: '⚠ not meaningful (law not identified)',
  }[c.verdict];
  return `predicted ${formatNumber(c.predicted)}${iv}, measured ${formatNumber(c.final.measured)}: ${verdict}`;
}

// ---------------------------------------------------------------------------------------
// Markdown
// ---------------------------------------------------------------------------------------

/**
 * Escapes text for Markdown prose and table cells: no raw HTML, no broken tables, no
 * accidental emphasis or links. Characters that cannot start markup where they stand
 * (the `_` inside d_sae, a `*` between spaces) are left alone so the raw file stays readable.
 */
export function escapeMarkdown(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`|])/g, '\\$1')
    .replace(/(^|[^A-Za-z0-9])_|_(?![A-Za-z0-9])/g, (m) => m.replace('_', '\\_'))
    .replace(/\*(?! )|(?<! )\*/g, '\\*')
    .replace(/\](?=[([:])/g, '\\]')
    .replace(/^#/, '\\#')
    .replace(/\r?\n/g, ' ');
}

function mdTable(t: Table): string {
  const line = (cells: string[]) => `| ${cells.map(escapeMarkdown).join(' | ')} |`;
  return [line(t.head), `|${t.head.map(() => '---').join('|')}|`, ...t.rows.map(line)].join('\n');
}

function mdImage(plot: RenderedPlot): string {
  return `![${escapeMarkdown(plot.title)}](plots/${encodeURI(plot.name)})`;
}

function mdFit({ fit, plot }: { fit: LoadedFit; plot: RenderedPlot }): string[] {
  const preds = predictionsTable(fit.fit);
  return [
    mdImage(plot),
    '',
    escapeMarkdown(fitSummaryLine(fit.fit)),
    '',
    ...(identificationLine(fit.fit) ? [escapeMarkdown(identificationLine(fit.fit)), ''] : []),
    ...(fit.fit.repetition
      ? [
          escapeMarkdown(
            `Repetition: ${fit.fit.repetition.model}; the runs made up to ${formatNumber(fit.fit.repetition.max_measured_passes)} passes.`,
          ),
          '',
        ]
      : []),
    mdTable(fitParamsTable(fit.fit)),
    '',
    ...(optimaTable(fit.fit) ? ['Optimum per width:', '', mdTable(optimaTable(fit.fit)!), ''] : []),
    ...(preds.rows.length ? ['Predictions:', '', mdTable(preds), ''] : []),
    ...(fit.fit.warnings ?? []).map((w) => `- ⚠ ${escapeMarkdown(w)}`),
  ];
}

export function renderMarkdown(model: ReportModel): string {
  const { inputs } = model;
  const out: string[] = [`# ${escapeMarkdown(inputs.title)}`, ''];
  if (inputs.notes) out.push(...inputs.notes.split(/\r?\n/).map((l) => `> ${escapeMarkdown(l)}`), '');
  out.push('The full report with the same plots is `report.html` (self-contained).', '');
  const summary = summaryRows(model);
  out.push(
    '## Summary',
    '',
    summary.length ? mdTable({ head: ['what', 'value'], rows: summary }) : 'Nothing to summarise.',
    '',
  );
  out.push('## Warnings', '');
  if (model.warnings.length)
    out.push(...model.warnings.map((w) => `- ⚠ **${escapeMarkdown(w.source)}**: ${escapeMarkdown(w.message)}`));
  else out.push('No warnings from the fits, the budget or the runs.');
  out.push('');
  const decisions = decisionsTable(inputs.decisions);
  if (decisions) out.push('## Decisions: what the final run used', '', mdTable(decisions), '');
  if (model.checks.length) {
    out.push('## Prediction check: the law against the final run', '');
    for (const c of model.checks)
      out.push(
        `${c.verdict === 'inside' ? '' : '⚠ '}${escapeMarkdown(c.headline)}`,
        '',
        ...c.notes.map((n) => `- ${escapeMarkdown(n)}`),
        '',
      );
  }
  if (model.fitPlots.length) {
    out.push('## Scaling laws: loss against size and data', '');
    for (const fp of model.fitPlots) out.push(`### ${escapeMarkdown(fp.plot.title)}`, '', ...mdFit(fp), '');
  }
  if (model.lrPlot) out.push('## Learning-rate law', '', ...mdFit(model.lrPlot), '');
  if (model.frontierPlot) out.push('## Sparsity / fidelity frontier', '', mdImage(model.frontierPlot), '');
  if (inputs.finalEval) {
    out.push('## Final SAE', '');
    if (inputs.finalRun) out.push(`Run \`${inputs.finalRun.label.replace(/`/g, "'")}\`.`, '');
    out.push(mdTable(evalTable(inputs.finalEval)), '');
  }
  const budget = budgetTable(inputs);
  if (budget) {
    out.push('## FLOP budget', '', mdTable(budget), '');
    out.push(...(inputs.budget?.warnings ?? []).map((w) => `- ⚠ ${escapeMarkdown(w)}`), '');
  }
  if (model.trainingPlots.length)
    out.push('## Training curves', '', ...model.trainingPlots.flatMap((p) => [mdImage(p), '']));
  const allRuns = [...inputs.runs, ...(inputs.finalRun ? [inputs.finalRun] : [])];
  if (allRuns.length) out.push('## Runs', '', mdTable(runsTable(allRuns)), '');
  const { facts, upstream } = provenanceTables(model);
  out.push('## Provenance', '', mdTable(facts), '');
  if (upstream) out.push('### Lock entries (upstream instances)', '', mdTable(upstream), '');
  return out.join('\n');
}
