/**
 * `report` stage: a self-contained HTML report and a Markdown summary of the scaling study
 * (fitted laws with intervals, learning-rate law, training curves, FLOP budget, final SAE,
 * warnings, provenance). The work is in src/report; Vega is imported only inside run().
 */
import { Type } from '@sinclair/typebox';
import { defineStage } from '../runtime/stage.js';
import { relativeInputPaths } from '../report/inputs.js';
import { DecisionRecord } from '../formats/fit.js';

const PathList = Type.Array(Type.Union([Type.String(), Type.Array(Type.String())]), {
  description: 'paths; a list of lists (several matrix stages) is flattened',
});

const BudgetRow = Type.Object({
  item: Type.String(),
  flops: Type.Union([Type.Number(), Type.Null()]),
  hours: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  note: Type.Optional(Type.String()),
});

const Params = Type.Object({
  title: Type.String({ description: 'report title' }),
  budget: Type.Optional(
    Type.Object(
      { table: Type.Array(BudgetRow), warnings: Type.Optional(Type.Array(Type.String())) },
      { description: "the flop-budget stage's `budget` value" },
    ),
  ),
  loss_fits: Type.Optional({ ...PathList, description: 'fit.json files of the loss laws (size, data)' }),
  lr_fit: Type.Optional(Type.String({ description: 'fit.json of the learning-rate law' })),
  runs: Type.Optional({ ...PathList, description: 'metrics.jsonl files of the small runs' }),
  final_run: Type.Optional(Type.String({ description: 'metrics.jsonl of the final training' })),
  final_eval: Type.Optional(Type.Object({}, { description: "the final SAE's eval object (mse, l0, fvu, ...)" })),
  decisions: Type.Optional(
    Type.Array(DecisionRecord, {
      description:
        'decision records (decide / lr-law `decision` outputs): the values the final run used, every fallback and clamp',
    }),
  ),
  dead_warning: Type.Number({
    minimum: 0,
    maximum: 1,
    default: 0.1,
    description: 'Flag runs whose held-out dead-latent fraction is above this',
  }),
  recovery_warning: Type.Number({
    minimum: 0,
    maximum: 1,
    default: 0.9,
    description:
      'Synthetic data with a ground truth: flag a final SAE that recovers fewer of the true features than this ' +
      '(max cosine > 0.9)',
  }),
  notes: Type.Optional(Type.String({ description: 'free text shown under the title' })),
});

export default defineStage({
  name: 'report',
  version: '3',
  description: 'Self-contained HTML report and Markdown summary with Vega-Lite plots (SVG)',
  params: Params,
  outputs: {
    html: { kind: 'file', description: 'report.html: one self-contained file (inline CSS and SVG)' },
    markdown: { kind: 'file', description: 'report.md: summary that links plots/*.svg' },
    plots: { kind: 'dir', description: 'plots/: the SVG plots' },
  },
  heavy: false,
  inputFiles: (params) => relativeInputPaths(params),
  async run(ctx) {
    const { buildReport } = await import('../report/build.js');
    const built = await buildReport(ctx.params, ctx.outDir, ctx.pipelineDir, ctx.provenance, ctx.log);
    return { html: built.html, markdown: built.markdown, plots: built.plots };
  },
});
