/**
 * Plot specifications (Vega-Lite, declarative JSON) and their server-side rendering to SVG.
 *
 * Vega renders to SVG in Node without a browser or a canvas (`View.toSVG()`), so the
 * report's plots are static SVG that can be inlined in the HTML and linked from Markdown.
 * Every axis, tick, legend and mark comes from Vega; this module only says what to draw.
 */
import type { FitResult, LoadedRun, TrainRecord } from './inputs.js';

// Vega-Lite specs are plain JSON; a loose type keeps the builders readable.
export type Spec = Record<string, unknown>;

export interface Plot {
  /** File name under plots/, also the anchor id in the HTML. */
  name: string;
  title: string;
  spec: Spec;
}

/** Predictions further than this factor beyond the largest fitted x are flagged. */
export const EXTRAPOLATION_FLAG = 2;

// ---------------------------------------------------------------------------------------
// Axis labels with units
// ---------------------------------------------------------------------------------------

const AXIS_LABELS: Record<string, string> = {
  d_sae: 'dictionary width d_sae (latents)',
  n_samples: 'training vectors D (count)',
  samples: 'training vectors D (count)',
  D: 'training vectors D (count)',
  N: 'SAE parameters N (count)',
  flops: 'training compute (FLOPs)',
  loss: 'final loss (MSE + λ·L0, normalised units)',
  mse: 'reconstruction MSE (per vector, normalised units)',
  lr: 'learning rate (Adam step size)',
  best_lr: 'best learning rate (Adam step size)',
  l0: 'L0 (active latents per vector)',
  fvu: 'FVU (fraction of variance unexplained)',
  step: 'training step (batches)',
};

/** A human label with units for a data field name; unknown names are shown as given. */
export function axisLabel(field: string | undefined, fallback: string): string {
  if (!field) return fallback;
  return AXIS_LABELS[field] ?? AXIS_LABELS[field.toLowerCase()] ?? field;
}

/** A log-axis domain with a margin (a tenth of the span in decades) so edge points stay clear of the axes. */
function logPaddedDomain(values: number[]): [number, number] | undefined {
  const logs = values.filter((v) => v > 0).map(Math.log10);
  if (!logs.length) return undefined;
  const lo = Math.min(...logs);
  const hi = Math.max(...logs);
  const margin = Math.max(0.04, (hi - lo) * 0.06);
  return [10 ** (lo - margin), 10 ** (hi + margin)];
}

/** Tick format that stays readable across the decades a log axis spans. */
function tickFormat(values: number[]): string {
  const max = Math.max(...values.map(Math.abs));
  if (max >= 1e4) return '~s'; // 16k, 2.1G
  if (max < 1e-2) return '.0e'; // 1e-4
  return '~g';
}

// ---------------------------------------------------------------------------------------
// Fitted laws: points (kept / dropped), the law's curve, its interval band, predictions
// ---------------------------------------------------------------------------------------

const SERIES_COLORS = {
  band: '#9ecae1',
  law: '#08519c',
  kept: '#e6550d',
  dropped: '#969696',
  prediction: '#31a354',
  extrapolated: '#de2d26',
};

/** A law's legend label: the formula with its fitted parameters. */
export function lawLabel(fit: FitResult): string {
  const params = Object.entries(fit.params)
    .map(([k, v]) => `${k}=${formatNumber(v)}`)
    .join(', ');
  return `fit: ${fit.formula ?? fit.law}${params ? ` (${params})` : ''}`;
}

export function fitPlotSpec(fit: FitResult, title: string, subtitle: string): Spec {
  if (fit.points.some((p) => typeof p.x !== 'number')) return chinchillaPlotSpec(fit, title, subtitle);
  const conf = Math.round((fit.confidence ?? 0.95) * 100);
  const labels = {
    band: `${conf}% interval of the law`,
    law: lawLabel(fit),
    kept: 'runs used in the fit',
    dropped: 'runs dropped from the fit',
    prediction: `prediction ± ${conf}% interval`,
    extrapolated: `prediction > ${EXTRAPOLATION_FLAG}× beyond fitted range`,
  };
  const positive = (...v: Array<number | undefined>) => v.every((x) => x === undefined || x > 0);
  const curve = (fit.curve ?? []).filter((c) => positive(c.x, c.y, c.lo, c.hi));
  const points = fit.points.filter((p) => positive(p.x, p.y));
  const predictions = (fit.predictions ?? []).filter((p) => positive(p.x, p.y, p.lo, p.hi));
  const rows = [
    ...curve.filter((c) => c.lo !== undefined && c.hi !== undefined).map((c) => ({ series: labels.band, ...c })),
    ...curve.map((c) => ({ series: labels.law, x: c.x, y: c.y })),
    ...points.map((p) => ({ series: p.kept ? labels.kept : labels.dropped, x: p.x, y: p.y })),
    ...predictions.map((p) => ({
      series: (p.extrapolation ?? 0) > EXTRAPOLATION_FLAG ? labels.extrapolated : labels.prediction,
      ...p,
    })),
  ];
  const used = new Set(rows.map((r) => r.series));
  const keys = (Object.keys(labels) as Array<keyof typeof labels>).filter((k) => used.has(labels[k]));
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    scale: { domain: keys.map((k) => labels[k]), range: keys.map((k) => SERIES_COLORS[k]) },
    legend: { orient: 'right', labelLimit: 360, labelFontSize: 11, symbolSize: 120, symbolOpacity: 1 },
  };
  // Same field, domain and legend as colour, so Vega-Lite merges them into one legend whose
  // symbols match the marks (a cross for dropped runs, a stroke for the law and the band).
  const SHAPES = { band: 'square', law: 'stroke', kept: 'circle', dropped: 'cross', prediction: 'diamond', extrapolated: 'diamond' };
  const shape = { ...color, scale: { domain: color.scale.domain, range: keys.map((k) => SHAPES[k]) } };
  const allX = rows.map((r) => r.x).filter((v): v is number => v !== undefined);
  const allY = rows.flatMap((r) => [r.y, (r as { lo?: number }).lo, (r as { hi?: number }).hi]).filter((v): v is number => v !== undefined);
  const x = {
    field: 'x',
    type: 'quantitative',
    scale: { type: 'log', nice: false, domain: logPaddedDomain(allX) },
    axis: { title: axisLabel(fit.x_label, 'x'), format: tickFormat(allX), grid: true },
  };
  const y = {
    field: 'y',
    type: 'quantitative',
    scale: { type: 'log', nice: false, domain: logPaddedDomain(allY) },
    axis: { title: axisLabel(fit.y_label, 'y'), format: tickFormat(allY), grid: true },
  };
  const only = (...names: string[]) => ({ filter: { field: 'series', oneOf: names } });
  const tooltip = [
    { field: 'series', type: 'nominal' },
    { field: 'x', type: 'quantitative', format: '.4~g' },
    { field: 'y', type: 'quantitative', format: '.4~g' },
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle, anchor: 'start', fontSize: 16 },
    width: 640,
    height: 340,
    data: { values: rows },
    layer: [
      {
        transform: [only(labels.band)],
        mark: { type: 'area', opacity: 0.45 },
        encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
      },
      {
        transform: [only(labels.law)],
        mark: { type: 'line', strokeWidth: 2.5 },
        encoding: { x, y, color },
      },
      {
        transform: [only(labels.prediction, labels.extrapolated)],
        mark: { type: 'rule', strokeWidth: 2 },
        encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
      },
      {
        transform: [only(labels.kept, labels.prediction, labels.extrapolated)],
        mark: { type: 'point', filled: true, size: 90, opacity: 1, stroke: 'white', strokeWidth: 0.8 },
        encoding: { x, y, color, shape, tooltip },
      },
      {
        // The flag on the plot itself, next to the far prediction.
        transform: [only(labels.extrapolated), { calculate: "'⚠ ' + format(datum.extrapolation, '.2~g') + '× beyond fitted range'", as: 'flag' }],
        mark: { type: 'text', align: 'right', dx: -10, dy: -12, fontSize: 12, fontWeight: 'bold', color: SERIES_COLORS.extrapolated },
        encoding: { x, y, text: { field: 'flag' } },
      },
      {
        transform: [only(labels.dropped)],
        mark: { type: 'point', filled: true, size: 110, opacity: 1 },
        encoding: { x, y, color, shape, tooltip },
      },
    ],
  };
}

/**
 * Chinchilla fits have points in (N, D): draw loss against D, one colour per N, with the
 * law's curve for each N when fit.json carries `curve` rows tagged with N.
 */
function chinchillaPlotSpec(fit: FitResult, title: string, subtitle: string): Spec {
  const nLabel = (n: number) => `N = ${formatNumber(n)}`;
  const points = fit.points
    .filter((p) => (p.D ?? 0) > 0 && p.y > 0)
    .map((p) => ({ group: nLabel(p.N ?? 0), D: p.D, y: p.y, kept: p.kept ? 'used in fit' : 'dropped' }));
  const curves = (fit.curve ?? [])
    .filter((c) => typeof c.N === 'number' && c.x > 0 && c.y > 0)
    .map((c) => ({ group: nLabel(c.N as number), D: c.x, y: c.y }));
  const x = {
    field: 'D',
    type: 'quantitative',
    scale: { type: 'log' },
    axis: { title: axisLabel('D', 'D'), format: tickFormat(points.map((p) => p.D ?? 1)) },
  };
  const y = { field: 'y', type: 'quantitative', scale: { type: 'log' }, axis: { title: axisLabel(fit.y_label, 'loss') } };
  const color = { field: 'group', type: 'nominal', title: 'model size', legend: { orient: 'right' } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle, anchor: 'start', fontSize: 16 },
    width: 640,
    height: 340,
    layer: [
      { data: { values: curves }, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color } },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 40 },
        encoding: {
          x,
          y,
          color,
          shape: { field: 'kept', type: 'nominal', title: 'run', scale: { domain: ['used in fit', 'dropped'], range: ['circle', 'cross'] } },
        },
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------
// Training curves: one line per run, one panel per metric
// ---------------------------------------------------------------------------------------

/** Panels of the training-curve figure: a descriptive title and a short y-axis title with units. */
const TRAINING_METRICS: Array<{ field: keyof TrainRecord; title: string; axis: string }> = [
  { field: 'loss', title: 'Total loss: MSE + λ·L0', axis: 'loss (normalised units)' },
  { field: 'mse', title: 'Reconstruction MSE (per vector)', axis: 'MSE (normalised units)' },
  { field: 'l0', title: 'L0: active latents per vector', axis: 'L0 (latents)' },
  { field: 'fvu', title: 'FVU: fraction of variance unexplained', axis: 'FVU (fraction)' },
];

export function trainingCurvesSpec(runs: LoadedRun[], title: string): Spec {
  const panels = TRAINING_METRICS.filter((m) => runs.some((r) => r.train.some((t) => typeof t[m.field] === 'number')));
  const runNames = runs.map((r) => r.label);
  const color = {
    field: 'run',
    type: 'nominal',
    title: 'run (instance)',
    scale: { domain: runNames, scheme: runNames.length > 10 ? 'category20' : 'tableau10' },
    legend: { orient: 'bottom', columns: Math.min(3, runNames.length), labelLimit: 320, symbolType: 'stroke', symbolStrokeWidth: 3 },
  };
  const panelSpec = (m: (typeof TRAINING_METRICS)[number]): Spec => {
    const rows = runs.flatMap((r) =>
      r.train
        .filter((t) => typeof t[m.field] === 'number' && Number.isFinite(t[m.field] as number))
        .map((t) => ({ run: r.label, step: t.step, value: t[m.field] as number })),
    );
    // Losses span decades during training: log scale when every value allows it.
    const log = m.field !== 'l0' && rows.length > 0 && rows.every((r) => r.value > 0);
    const maxStep = Math.max(0, ...rows.map((r) => r.step));
    return {
      title: { text: m.title, fontSize: 13 },
      width: 380,
      height: 230,
      data: { values: rows },
      mark: { type: 'line', strokeWidth: 1.6, point: rows.length < 60 ? { size: 18, filled: true } : false },
      encoding: {
        x: { field: 'step', type: 'quantitative', axis: { title: axisLabel('step', 'step'), format: maxStep >= 1e4 ? '~s' : 'd' } },
        y: {
          field: 'value',
          type: 'quantitative',
          scale: log ? { type: 'log' } : { zero: m.field === 'l0' },
          axis: { title: m.axis, format: log ? '~g' : '~s' },
        },
        color,
        tooltip: [
          { field: 'run', type: 'nominal' },
          { field: 'step', type: 'quantitative' },
          { field: 'value', type: 'quantitative', format: '.4~g' },
        ],
      },
    };
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 16 },
    columns: 2,
    concat: panels.map(panelSpec),
    resolve: { scale: { color: 'shared' } },
  };
}

// ---------------------------------------------------------------------------------------
// Rendering: Vega-Lite -> Vega -> SVG, in Node, no browser
// ---------------------------------------------------------------------------------------

export interface SvgRenderer {
  render(spec: Spec): Promise<string>;
  versions: { vega: string; vegaLite: string };
}

/** Loads Vega lazily (it is only needed when a report is actually built). */
export async function createSvgRenderer(): Promise<SvgRenderer> {
  const vega = await import('vega');
  const vegaLite = await import('vega-lite');
  return {
    versions: { vega: vega.version, vegaLite: vegaLite.version },
    async render(spec: Spec): Promise<string> {
      const compiled = vegaLite.compile(spec as never).spec;
      const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
      try {
        return await view.toSVG();
      } finally {
        view.finalize();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------

/** Compact numbers for labels and tables: 4 significant digits, exponent outside [1e-3, 1e5). */
export function formatNumber(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '-∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(3).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}
