/**
 * Plot specifications (Vega-Lite, declarative JSON) and their server-side rendering to SVG.
 *
 * Vega renders to SVG in Node without a browser or a canvas (`View.toSVG()`), so the
 * report's plots are static SVG that can be inlined in the HTML and linked from Markdown.
 * Every axis, tick, legend and mark comes from Vega; this module only says what to draw.
 */
import type { LoadedRun } from './inputs.js';
import type { FitFile, FitPointRecord } from '../formats/fit.js';
import type { MetricsTrain } from '../formats/metrics.js';

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
  N: 'parameters N (count)',
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

/** One legend entry of a fit plot: its label, colour and symbol. */
interface Series {
  label: string;
  color: string;
  shape: string;
}

/** Why a point was left out (fit-law's `dropped_by`), for the legend. */
const DROP_REASONS: Record<string, string> = {
  select_min_by: 'runs not best at their x (not fitted)',
  x_range: 'runs outside the fitted x range',
  drop_highest: 'runs dropped: highest loss',
  off_target: 'runs off their target L0 (not fitted)',
};
const DROP_SHAPES = ['cross', 'triangle-up', 'square', 'triangle-down'];

/** A law's legend label: the formula with its fitted parameters. */
export function lawLabel(fit: FitFile): string {
  const params = Object.entries(fit.params)
    .map(([k, v]) => `${k}=${formatNumber(v)}`)
    .join(', ');
  return `fit: ${fit.formula ?? fit.law}${params ? ` (${params})` : ''}`;
}

/** Positive finite number (a log axis cannot show anything else). */
const pos = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;

export function fitPlotSpec(fit: FitFile, title: string, subtitle: string): Spec {
  if (fit.points.some((p) => typeof p.x !== 'number')) return chinchillaPlotSpec(fit, title, subtitle);
  const conf = Math.round((fit.confidence ?? 0.95) * 100);
  const S = {
    band: { label: `${conf}% interval of the law`, color: '#9ecae1', shape: 'square' },
    law: { label: lawLabel(fit), color: '#08519c', shape: 'stroke' },
    kept: { label: 'runs used in the fit', color: '#e6550d', shape: 'circle' },
    prediction: { label: `prediction ± ${conf}% interval`, color: '#31a354', shape: 'diamond' },
    extrapolated: {
      label: `prediction > ${EXTRAPOLATION_FLAG}× beyond fitted range`,
      color: '#de2d26',
      shape: 'diamond',
    },
  } satisfies Record<string, Series>;
  const dropped = droppedSeries(fit);
  const curve = (fit.curve ?? []).filter((c) => pos(c.x) && pos(c.y));
  const rows: Array<Record<string, unknown> & { series: string; x: number; y: number }> = [
    ...curve
      .filter((c) => pos(c.lo) && pos(c.hi))
      .map((c) => ({ series: S.band.label, x: c.x!, y: c.y!, lo: c.lo, hi: c.hi })),
    ...curve.map((c) => ({ series: S.law.label, x: c.x!, y: c.y! })),
    ...fit.points
      .filter((p) => pos(p.x) && pos(p.y))
      .map((p) => ({ series: p.kept ? S.kept.label : dropped.of(p).label, x: p.x!, y: p.y! })),
    ...(fit.predictions ?? [])
      .filter((p) => pos(p.x) && pos(p.y))
      .map((p) => ({
        series: (p.extrapolation ?? 0) > EXTRAPOLATION_FLAG ? S.extrapolated.label : S.prediction.label,
        x: p.x!,
        y: p.y,
        // A missing interval (no bootstrap) draws the prediction as a point without a bar.
        ...(pos(p.lo) && pos(p.hi) ? { lo: p.lo, hi: p.hi } : {}),
        extrapolation: p.extrapolation ?? null,
      })),
  ];
  const used = new Set(rows.map((r) => r.series));
  const series = [S.band, S.law, S.kept, ...dropped.all, S.prediction, S.extrapolated].filter((e) => used.has(e.label));
  const legend = { orient: 'right', labelLimit: 360, labelFontSize: 11, symbolSize: 120, symbolOpacity: 1 };
  const domain = series.map((e) => e.label);
  const color = {
    field: 'series',
    type: 'nominal',
    title: null,
    legend,
    scale: { domain, range: series.map((e) => e.color) },
  };
  // Same field, domain and legend as colour, so Vega-Lite merges them into one legend whose
  // symbols match the marks (a cross for dropped runs, a stroke for the law, a square for the band).
  const shape = { ...color, scale: { domain, range: series.map((e) => e.shape) } };
  const allX = rows.map((r) => r.x);
  const allY = rows.flatMap((r) => [r.y, r.lo as number | undefined, r.hi as number | undefined]).filter(pos);
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
  const only = (...labels: string[]) => ({ filter: { field: 'series', oneOf: labels } });
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
    // Merged colour+shape legends take the config limit, not the channel's: long law labels.
    config: { legend: { labelLimit: 400 } },
    data: { values: rows },
    layer: [
      {
        transform: [only(S.band.label)],
        mark: { type: 'area', opacity: 0.45 },
        encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
      },
      { transform: [only(S.law.label)], mark: { type: 'line', strokeWidth: 2.5 }, encoding: { x, y, color } },
      {
        transform: [only(S.prediction.label, S.extrapolated.label), { filter: 'isValid(datum.lo)' }],
        mark: { type: 'rule', strokeWidth: 2 },
        encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color },
      },
      {
        transform: [only(...dropped.all.map((d) => d.label))],
        mark: { type: 'point', filled: true, size: 100, opacity: 0.9 },
        encoding: { x, y, color, shape, tooltip },
      },
      {
        transform: [only(S.kept.label, S.prediction.label, S.extrapolated.label)],
        mark: { type: 'point', filled: true, size: 100, opacity: 1, stroke: 'white', strokeWidth: 0.8 },
        encoding: { x, y, color, shape, tooltip },
      },
      {
        // The flag on the plot itself, next to the far prediction.
        transform: [
          only(S.extrapolated.label),
          { calculate: "'⚠ ' + format(datum.extrapolation, '.2~g') + '× beyond fitted range'", as: 'flag' },
        ],
        mark: {
          type: 'text',
          align: 'right',
          dx: -10,
          dy: -12,
          fontSize: 12,
          fontWeight: 'bold',
          color: S.extrapolated.color,
        },
        encoding: { x, y, text: { field: 'flag' } },
      },
    ],
  };
}

/** Legend entries for dropped points, one per reason fit-law gives (grey, distinct symbols). */
function droppedSeries(fit: FitFile): { all: Series[]; of(p: FitPointRecord): Series } {
  const byReason = new Map<string, Series>();
  const reasonOf = (p: FitPointRecord) => (typeof p.dropped_by === 'string' ? p.dropped_by : '');
  for (const p of fit.points) {
    const r = reasonOf(p);
    if (p.kept || byReason.has(r)) continue;
    const label = DROP_REASONS[r] ?? (r ? `runs dropped (${r})` : 'runs dropped from the fit');
    byReason.set(r, { label, color: '#969696', shape: DROP_SHAPES[byReason.size % DROP_SHAPES.length] });
  }
  return { all: [...byReason.values()], of: (p) => byReason.get(reasonOf(p))! };
}

/**
 * Chinchilla fits have points in (N, D): loss against D, coloured by N on a log colour scale
 * (there may be hundreds of distinct N), with the law's curve for each N where fit.json has
 * one (`curve: [{N, points: [{x: D, y, lo, hi}]}]`, or flat rows tagged with N).
 */
function chinchillaPlotSpec(fit: FitFile, title: string, subtitle: string): Spec {
  const points = fit.points
    .filter((p) => pos(p.N) && pos(p.D) && pos(p.y))
    .map((p) => ({ N: p.N, D: p.D, y: p.y, status: p.kept ? 'used in the fit' : 'dropped' }));
  const curves = chinchillaCurves(fit.curve).filter((c) => pos(c.N) && pos(c.D) && pos(c.y));
  const allD = [...points.map((p) => p.D as number), ...curves.map((c) => c.D)];
  const x = {
    field: 'D',
    type: 'quantitative',
    scale: { type: 'log', nice: false, domain: logPaddedDomain(allD) },
    axis: { title: `${fit.d_label ?? 'D'} (log scale)`, format: tickFormat(allD), grid: true },
  };
  // Chinchilla data need not be SAE runs (the Hoffmann et al. refit): labels as fit.json gives them.
  const y = {
    field: 'y',
    type: 'quantitative',
    scale: { type: 'log' },
    axis: { title: fit.y_label ?? 'loss', format: '~g', grid: true },
  };
  const color = {
    field: 'N',
    type: 'quantitative',
    title: fit.x_label ?? 'N',
    scale: { type: 'log', scheme: 'viridis' },
    legend: { type: 'gradient', format: '~s', gradientLength: 220 },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, subtitle, anchor: 'start', fontSize: 16 },
    width: 640,
    height: 340,
    layer: [
      {
        data: { values: curves },
        // The law at each N, in one neutral colour: sharing the colour scale with the points
        // would turn Vega's colour bar into a list of hundreds of symbols.
        mark: { type: 'line', strokeWidth: 1.2, opacity: 0.7, color: '#08519c' },
        encoding: { x, y, detail: { field: 'N', type: 'nominal' } },
      },
      {
        data: { values: points },
        mark: { type: 'point', filled: true, size: 36, opacity: 0.85 },
        encoding: {
          x,
          y,
          color,
          shape: {
            field: 'status',
            type: 'nominal',
            title: 'run',
            scale: { domain: ['used in the fit', 'dropped'], range: ['circle', 'cross'] },
          },
        },
      },
    ],
  };
}

function chinchillaCurves(curve: FitFile['curve']): Array<{ N: number; D: number; y: number }> {
  return (curve ?? []).flatMap((c) => {
    if (Array.isArray(c.points)) return c.points.map((q) => ({ N: c.N as number, D: q.x, y: q.y }));
    return typeof c.N === 'number' && c.x !== undefined && c.y !== undefined ? [{ N: c.N, D: c.x, y: c.y }] : [];
  });
}

// ---------------------------------------------------------------------------------------
// Training curves: one line per run, one panel per metric
// ---------------------------------------------------------------------------------------

/** Panels of the training-curve figure: a descriptive title and a short y-axis title with units. */
const TRAINING_METRICS: Array<{ field: keyof MetricsTrain; title: string; axis: string }> = [
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
    legend: {
      orient: 'bottom',
      columns: Math.min(3, runNames.length),
      labelLimit: 320,
      symbolType: 'stroke',
      symbolStrokeWidth: 3,
    },
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
        x: {
          field: 'step',
          type: 'quantitative',
          scale: { zero: true },
          axis: { title: axisLabel('step', 'step'), format: maxStep >= 1e4 ? '~s' : 'd' },
        },
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

/** Held-out FVU against held-out L0, one point per run, coloured by width: the frontier the runs trace. */
export function frontierSpec(runs: LoadedRun[], title: string): Spec | null {
  const rows = runs
    .filter((r) => typeof r.eval?.l0 === 'number' && typeof r.eval?.fvu === 'number' && (r.eval.fvu as number) > 0)
    .map((r) => ({
      run: r.label,
      l0: r.eval!.l0 as number,
      fvu: r.eval!.fvu as number,
      d_sae: String(r.config?.d_sae ?? '?'),
    }));
  if (rows.length < 2) return null;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start', fontSize: 16 },
    width: 520,
    height: 320,
    data: { values: rows },
    mark: { type: 'point', filled: true, size: 60 },
    encoding: {
      x: {
        field: 'l0',
        type: 'quantitative',
        scale: { type: 'log' },
        axis: { title: axisLabel('l0', 'L0'), format: '~g' },
      },
      y: {
        field: 'fvu',
        type: 'quantitative',
        scale: { type: 'log' },
        axis: { title: axisLabel('fvu', 'FVU'), format: '~g' },
      },
      color: { field: 'd_sae', type: 'nominal', title: 'd_sae', sort: { field: 'd_sae' } },
      tooltip: [
        { field: 'run', type: 'nominal' },
        { field: 'l0', type: 'quantitative', format: '.3~g' },
        { field: 'fvu', type: 'quantitative', format: '.3~g' },
      ],
    },
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
  // Integers such as widths (16384) and step counts read best in full.
  if (Number.isInteger(v) && a < 1e6) return String(v);
  if (a >= 1e5 || a < 1e-3)
    return v
      .toExponential(3)
      .replace(/\.?0+e/, 'e')
      .replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}
