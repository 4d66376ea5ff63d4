/**
 * `lr-law`: the learning-rate law and the learning rate it decides. Per width, a parabola
 * in log lr through the losses around the swept minimum gives a continuous optimum with an
 * interval (src/fit/lr-optimum.ts); a power law of the optima against the width
 * extrapolates to the final width. The law refuses (the decision falls back to a stated
 * rule) when a width's minimum is on the edge of its grid or the power law is not
 * identified; the extrapolated lr is clamped to a stated factor of the swept range.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { identificationParams, identificationRule } from './identification-params.js';
import { defineStage, type Json } from '../runtime/stage.js';
import { lrOptimum, type LrOptimum } from '../fit/lr-optimum.js';
import { fitLaw } from '../fit/fit.js';
import { decide } from '../fit/decide.js';
import type { FitPoint } from '../fit/points.js';
import { FIT_FORMAT, type FitFile } from '../formats/fit.js';

const Values = Type.Array(Type.Union([Type.Number(), Type.Null()]));

const Params = Type.Object(
  {
    d_sae: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { description: 'Width of each sweep run' }),
    lr: Type.Array(Type.Number({ exclusiveMinimum: 0 }), {
      description: 'Learning rate of each sweep run (parallel to d_sae)',
    }),
    loss: { ...Values, description: 'Held-out loss of each sweep run (null: diverged)' },
    on_target: Type.Optional(
      Type.Array(Type.Union([Type.Boolean(), Type.Null()]), {
        description:
          'Parallel to d_sae (train-sae `l0_on_target`): runs that ended off their target L0 stay in (a learning ' +
          'rate that wrecks the sparsity is a bad one) but are flagged in the warnings and the report',
      }),
    ),
    n_samples: Type.Optional(
      Type.Array(Type.Number({ exclusiveMinimum: 0 }), {
        description:
          'Vectors each sweep run trained on (parallel to d_sae): the run length the optima were measured at',
      }),
    ),
    final_n_samples: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description:
          "Vectors the final run trains on: longer than the sweep's runs is an extrapolation in run length the law " +
          'does not model (the best lr usually falls as runs lengthen), stated in the decision',
      }),
    ),
    predict_at: Type.Number({ exclusiveMinimum: 0, description: 'The final width' }),
    clamp_factor: Type.Number({
      minimum: 1,
      default: 2,
      description: 'The decided lr stays within [lowest swept lr / factor, highest swept lr * factor]',
    }),
    window: Type.Integer({
      minimum: 3,
      default: 5,
      description: "Points around each width's minimum the parabola is fitted to",
    }),
    bootstrap: Type.Integer({
      minimum: 0,
      default: 200,
      description: 'Bootstrap resamples (parabola vertices and the power law)',
    }),
    seed: Type.Integer({ default: 0 }),
    confidence: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.95 }),
    ...identificationParams,
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'lr-law',
  version: '1',
  description:
    'Learning-rate law: per width a parabola in log lr around the swept minimum (continuous optimum, bootstrap interval, ' +
    'edge detection; replicate runs at one lr count once, at their geometric mean loss), a power law of the optima in the width, and the decided lr at the final width (fallback to the ' +
    "largest width's optimum when the law refuses; clamped to a factor of the swept range).",
  params: Params,
  outputs: {
    fit: {
      kind: 'file',
      description: 'fit.json: the power law of the optima (as fit-law) plus `optima` (per width) and `decision`',
    },
    lr: { kind: 'value', description: 'The learning rate decided for the final width' },
    decision: {
      kind: 'value',
      description:
        '{name, value, source: law|fallback, law_value, identified, fallback_rule, clamped, reasons, warnings}',
    },
    optima: { kind: 'value', description: 'Per width: {width, best_swept, optimum, interval, edge, note}' },
    identified: { kind: 'value', description: 'Whether the law decided (no edge, power law identified)' },
    warnings: { kind: 'value', description: 'Edges, identification, fallback and clamp warnings' },
  },
  async run(ctx) {
    const p = ctx.params;
    if (p.lr.length !== p.d_sae.length || p.loss.length !== p.d_sae.length) {
      throw new Error(
        `lr-law: d_sae, lr and loss must be parallel lists (lengths ${p.d_sae.length}, ${p.lr.length}, ${p.loss.length})`,
      );
    }
    const widths = [...new Set(p.d_sae)].sort((a, b) => a - b);
    const optima = widths.map((w, i) => {
      const idx = p.d_sae.map((d, j) => (d === w ? j : -1)).filter((j) => j >= 0);
      return lrOptimum(
        w,
        idx.map((j) => p.lr[j]),
        idx.map((j) => p.loss[j]),
        { window: p.window, bootstrap: p.bootstrap, seed: p.seed + i, confidence: p.confidence },
      );
    });
    const result = lawFromOptima(optima, p);
    const runLength = runLengthWarning(p);
    if (runLength) {
      result.decision.warnings.push(runLength);
      result.warnings.push(runLength);
    }
    result.warnings.push(...offTargetFlags(p));
    for (const o of optima) {
      ctx.log(
        `d_sae ${o.width}: best swept lr ${o.best_swept}, optimum ${o.optimum ?? '-'} ` +
          `${o.interval ? `[${o.interval.map((v) => v.toPrecision(3)).join(', ')}]` : ''}${o.note ? ` (${o.note})` : ''}`,
      );
    }
    for (const w of result.decision.warnings) ctx.log(`warning: ${w}`);
    writeFileSync(join(ctx.outDir, 'fit.json'), JSON.stringify(result.json, null, 2) + '\n');
    return {
      fit: 'fit.json',
      lr: result.decision.value,
      decision: result.decision as unknown as Json,
      optima: optima.map(({ width, best_swept, optimum, interval, edge, note }) => ({
        width,
        best_swept,
        optimum,
        interval,
        edge,
        note,
      })) as Json,
      identified: result.decision.identified,
      warnings: result.warnings,
    };
  },
});

type P = {
  predict_at: number;
  clamp_factor: number;
  lr: number[];
  bootstrap: number;
  seed: number;
  confidence: number;
  max_condition: number;
  max_interval_ratio: number;
  max_exponent_width: number;
  max_exponent_factor: number;
};

function lawFromOptima(optima: LrOptimum[], p: P) {
  const reasons: string[] = [];
  const warnings: string[] = [];
  for (const o of optima) {
    if (o.edge) reasons.push(`d_sae ${o.width}: ${o.note}; extend its sweep`);
    else if (o.optimum === null) reasons.push(`d_sae ${o.width}: ${o.note}`);
  }
  const interior = optima.filter((o) => o.optimum !== null);
  const points: FitPoint[] = optima.map((o) => ({
    x: o.width,
    y: o.optimum ?? o.best_swept ?? NaN,
    kept: o.optimum !== null,
    ...(o.optimum === null ? { dropped_by: o.edge ? `edge_${o.edge}` : 'no_optimum' } : {}),
    source: `d_sae ${o.width}`,
  }));
  let json: FitFile = {
    format: FIT_FORMAT,
    law: 'power',
    formula: 'lr* = a * d_sae^b',
    x_label: 'd_sae (features)',
    y_label: 'optimal learning rate',
    params: {},
    intervals: {},
    points: points
      .filter((q) => Number.isFinite(q.y))
      .map(({ x, y, kept, dropped_by }) => ({ x, y, kept, ...(dropped_by ? { dropped_by } : {}) })),
    predictions: [],
    warnings: [],
  };
  let lawValue: number | null = null;
  let identified = false;
  if (interior.length >= 2) {
    const fit = fitLaw(
      points.filter((q) => q.kept),
      {
        law: 'power',
        predictAt: [p.predict_at],
        bootstrap: p.bootstrap,
        seed: p.seed,
        confidence: p.confidence,
        xLabel: 'd_sae (features)',
        yLabel: 'optimal learning rate',
        identification: identificationRule(p),
      },
    );
    json = { ...fit.json, points: json.points };
    lawValue = fit.predictions[0];
    identified = fit.identification.identified && reasons.length === 0;
    reasons.push(...fit.identification.reasons);
    warnings.push(...fit.warnings);
    const exponent = fit.params.b;
    if (exponent !== null && exponent > 0) {
      warnings.push(
        `the optimal lr rises with the width (exponent b = ${exponent.toPrecision(3)}); the literature finds it falling ` +
          '(about d_sae^-0.5, Gao et al. 2024): check the sweep',
      );
    }
  } else {
    reasons.push(`only ${interior.length} width(s) have an interior optimum: a power law needs 2 or more`);
  }
  const largest = optima[optima.length - 1];
  const fallback = largest.optimum ?? largest.best_swept ?? Math.min(...p.lr);
  const lo = Math.min(...p.lr) / p.clamp_factor;
  const hi = Math.max(...p.lr) * p.clamp_factor;
  const decision = decide({
    name: 'final learning rate',
    lawValue,
    identified,
    reasons,
    fallback,
    fallbackRule:
      `the ${largest.optimum !== null ? 'parabola optimum' : 'best swept lr'} of the largest swept ` +
      `width (d_sae ${largest.width})`,
    clamp: {
      min: lo,
      max: hi,
      rule: `within a factor ${p.clamp_factor} of the swept lr range [${fmt(Math.min(...p.lr))}, ${fmt(Math.max(...p.lr))}]`,
    },
  });
  warnings.push(...optima.filter((o) => o.edge).map((o) => `EDGE: d_sae ${o.width}: ${o.note}`));
  warnings.push(...decision.warnings);
  const allWarnings = [...new Set([...(json.warnings ?? []), ...warnings])];
  json = { ...json, optima, decision, warnings: allWarnings };
  return { json, decision, warnings: allWarnings };
}

/** The final run trains longer than any sweep run: the law's lr is extrapolated in run length too. */
function runLengthWarning(p: { d_sae: number[]; n_samples?: number[]; final_n_samples?: number }): string | null {
  if (p.n_samples === undefined) return null;
  if (p.n_samples.length !== p.d_sae.length) {
    throw new Error(`lr-law: n_samples has ${p.n_samples.length} values but there are ${p.d_sae.length} runs`);
  }
  const measured = Math.max(...p.n_samples);
  if (p.final_n_samples === undefined || p.final_n_samples <= measured) return null;
  return (
    `EXTRAPOLATION (run length): the optima were measured on runs of ${fmt(measured)} vectors; the final run ` +
    `trains ${fmt(p.final_n_samples)} (${fmt(p.final_n_samples / measured)}x longer), a length the lr law does ` +
    'not model (the best lr usually falls as runs lengthen)'
  );
}

/** One warning per sweep run that missed its target L0 (kept in the law, but not at matched sparsity). */
function offTargetFlags(p: { d_sae: number[]; lr: number[]; on_target?: Array<boolean | null> }): string[] {
  if (p.on_target === undefined) return [];
  if (p.on_target.length !== p.d_sae.length) {
    throw new Error(`lr-law: on_target has ${p.on_target.length} values but there are ${p.d_sae.length} runs`);
  }
  return p.d_sae
    .map((w, i) =>
      p.on_target![i] === false
        ? `OFF TARGET: d_sae ${w}, lr ${fmt(p.lr[i])} ended outside its target L0's tolerance: its loss is at a ` +
          `different sparsity (kept: a learning rate that cannot hold the sparsity is a worse one)`
        : '',
    )
    .filter(Boolean);
}

function fmt(v: number): string {
  return String(+v.toPrecision(3));
}
