/**
 * Builds the report: load inputs, draw the plots (Vega-Lite -> SVG), render HTML and
 * Markdown, and write report.html, report.md and plots/*.svg into the output folder.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Provenance } from '../util/provenance.js';
import { loadInputs, type LoadedFit, type LoadedRun, type ReportParams } from './inputs.js';
import { createSvgRenderer, fitPlotSpec, frontierSpec, trainingCurvesSpec, type SvgRenderer } from './plots.js';
import { predictionChecks } from './prediction-check.js';
import { collectWarnings, renderHtml, renderMarkdown, type RenderedPlot, type ReportModel } from './render.js';

export interface BuiltReport {
  html: string; // relative to outDir
  markdown: string;
  plots: string;
  plotFiles: string[];
  warnings: number;
}

export async function buildReport(
  params: ReportParams,
  outDir: string,
  pipelineDir: string,
  provenance?: Provenance,
  log: (m: string) => void = () => {},
): Promise<BuiltReport> {
  const inputs = loadInputs(params, pipelineDir, provenance);
  log(
    `report: ${inputs.lossFits.length} loss fit(s), lr fit: ${inputs.lrFit ? 'yes' : 'no'}, ` +
      `${inputs.runs.length} run(s), final run: ${inputs.finalRun ? 'yes' : 'no'}`,
  );
  const renderer = await createSvgRenderer();
  const names = new UniqueNames();

  const fitPlots = [];
  for (const fit of inputs.lossFits) {
    const name = names.take(`${fit.fit.y_label ?? 'y'}-vs-${fit.fit.x_label ?? 'x'}`);
    fitPlots.push({ fit, plot: await drawFit(renderer, fit, name, fitTitle(fit)) });
  }
  const lrPlot = inputs.lrFit
    ? {
        fit: inputs.lrFit,
        plot: await drawFit(
          renderer,
          inputs.lrFit,
          names.take('lr-law'),
          'Learning-rate law: best learning rate per width',
        ),
      }
    : null;
  const trainingPlots: RenderedPlot[] = [];
  if (inputs.runs.some(hasTraining)) {
    trainingPlots.push(
      await drawTraining(renderer, inputs.runs, names.take('training-runs'), 'Training curves: sweep runs'),
    );
  }
  if (inputs.finalRun && hasTraining(inputs.finalRun)) {
    trainingPlots.push(
      await drawTraining(renderer, [inputs.finalRun], names.take('training-final'), 'Training curves: final run'),
    );
  }

  const frontier = frontierSpec(
    [...inputs.runs, ...(inputs.finalRun ? [inputs.finalRun] : [])],
    'Held-out FVU against L0, every run',
  );
  const frontierPlot = frontier
    ? {
        name: names.take('frontier'),
        title: 'Sparsity / fidelity frontier: held-out FVU against L0',
        svg: await renderer.render(frontier),
      }
    : null;

  const checks = predictionChecks(inputs);
  const model: ReportModel = {
    inputs,
    fitPlots,
    lrPlot,
    trainingPlots,
    frontierPlot,
    checks,
    warnings: collectWarnings(inputs, checks),
    plotLibrary: renderer.versions,
  };
  const plotsDir = join(outDir, 'plots');
  mkdirSync(plotsDir, { recursive: true });
  const allPlots = [
    ...fitPlots.map((f) => f.plot),
    ...(lrPlot ? [lrPlot.plot] : []),
    ...trainingPlots,
    ...(frontierPlot ? [frontierPlot] : []),
  ];
  for (const p of allPlots) writeFileSync(join(plotsDir, p.name), p.svg);
  writeFileSync(join(outDir, 'report.html'), renderHtml(model));
  writeFileSync(join(outDir, 'report.md'), renderMarkdown(model));
  log(`report: ${allPlots.length} plot(s), ${model.warnings.length} warning(s)`);
  return {
    html: 'report.html',
    markdown: 'report.md',
    plots: 'plots',
    plotFiles: allPlots.map((p) => p.name),
    warnings: model.warnings.length,
  };
}

/** What a fit's x variable means, for plot titles. */
const X_NOUNS: Record<string, string> = {
  d_sae: 'SAE size (d_sae)',
  n_samples: 'training data (n_samples)',
  samples: 'training data (samples)',
  flops: 'compute (FLOPs)',
};

function fitTitle(fit: LoadedFit): string {
  const x = fit.fit.x_label ?? 'x';
  if (fit.fit.law === 'chinchilla')
    return `${capitalise(fit.fit.y_label ?? 'loss')} against ${x} and ${fit.fit.d_label ?? 'D'}`;
  return `${capitalise(fit.fit.y_label ?? 'y')} against ${X_NOUNS[x] ?? x}`;
}

async function drawFit(renderer: SvgRenderer, fit: LoadedFit, name: string, title: string): Promise<RenderedPlot> {
  const f = fit.fit;
  const kept = f.points.filter((p) => p.kept).length;
  const r2 = f.goodness?.r2;
  const subtitle =
    `${f.law} law, log-log axes; ${kept} of ${f.points.length} runs used in the fit` +
    (typeof r2 === 'number' ? `; R² = ${r2.toFixed(3)}` : '');
  const svg = await renderer.render(fitPlotSpec(f, title, subtitle));
  return { name, title, svg };
}

async function drawTraining(
  renderer: SvgRenderer,
  runs: LoadedRun[],
  name: string,
  title: string,
): Promise<RenderedPlot> {
  const svg = await renderer.render(trainingCurvesSpec(runs.filter(hasTraining), title));
  return { name, title, svg };
}

function hasTraining(run: LoadedRun): boolean {
  return run.train.length > 0;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** File-system-safe, unique plot file names (two fits of loss vs d_sae must not collide). */
class UniqueNames {
  private used = new Set<string>();
  take(base: string): string {
    const safe = base.replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^-+|-+$/g, '') || 'plot';
    let name = `${safe}.svg`;
    for (let i = 2; this.used.has(name); i++) name = `${safe}-${i}.svg`;
    this.used.add(name);
    return name;
  }
}
