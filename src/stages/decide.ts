/**
 * `decide`: takes a value from a law for the next run, or, when the law is not identified or
 * gave none, a stated fallback; then clamps it to stated bounds. Its `decision` record (every
 * fallback and clamp, in words) is what the report lists. The logic is src/fit/decide.ts.
 */
import { Type } from '@sinclair/typebox';
import { defineStage, type Json } from '../runtime/stage.js';
import { decide } from '../fit/decide.js';
import type { DecisionRecord } from '../formats/fit.js';

const Params = Type.Object(
  {
    name: Type.String({ description: 'What is decided, e.g. "final data size (vectors)"' }),
    value: Type.Union([Type.Number(), Type.Null()], { description: "The law's value (null: none)" }),
    identified: Type.Boolean({ default: true, description: 'Whether the law is identified (fit-law `identified`)' }),
    identification: Type.Optional(
      Type.Object(
        { reasons: Type.Optional(Type.Array(Type.String())) },
        {
          description:
            "The law's identification record (fit-law `identification`): its reasons are quoted on a fallback",
        },
      ),
    ),
    fallback: Type.Number({ exclusiveMinimum: 0, description: 'Value used when the law does not decide' }),
    fallback_rule: Type.String({ description: 'The fallback rule, in words (shown in the outputs and the report)' }),
    min: Type.Optional(Type.Number({ description: 'Clamp: lower bound' })),
    max: Type.Optional(Type.Number({ description: 'Clamp: upper bound' })),
    clamp_rule: Type.String({ default: 'stated bounds', description: 'Where the bounds come from, in words' }),
    unique_available: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        description: 'Unique vectors the run can draw on: the decision records its passes',
      }),
    ),
    measured_passes: Type.Optional(
      Type.Array(Type.Union([Type.Number(), Type.Null()]), {
        description: 'Passes of the measured runs (train-sae `passes`): a decision beyond the most of them is flagged',
      }),
    ),
    warnings: Type.Array(Type.String(), { default: [], description: 'Warnings of the law to carry along' }),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'decide',
  version: '1',
  description:
    "Takes a law's value for the next run, or a stated fallback when the law is not identified; clamps it to stated " +
    'bounds; records every fallback, clamp and extrapolated repetition for the outputs and the report.',
  params: Params,
  outputs: {
    value: { kind: 'value', description: 'The decided value' },
    decision: {
      kind: 'value',
      description:
        '{name, value, source: law|fallback, law_value, identified, fallback_rule, clamped, reasons, warnings, passes?}',
    },
  },
  async run(ctx) {
    const p = ctx.params;
    const clamp =
      p.min !== undefined || p.max !== undefined ? { min: p.min, max: p.max, rule: p.clamp_rule } : undefined;
    const d = decide({
      name: p.name,
      lawValue: p.value,
      identified: p.identified,
      reasons: p.identification?.reasons ?? [],
      fallback: p.fallback,
      fallbackRule: p.fallback_rule,
      clamp,
      warnings: p.warnings,
    });
    const record: DecisionRecord = { ...d };
    if (p.unique_available !== undefined) {
      const passes = d.value / p.unique_available;
      record.passes = passes;
      const measured = Math.max(...(p.measured_passes ?? []).filter((v): v is number => typeof v === 'number'));
      if (Number.isFinite(measured) && passes > measured) {
        const w =
          `PASSES: ${d.name} = ${d.value.toPrecision(3)} makes ${passes.toPrecision(3)} passes over ${p.unique_available} unique ` +
          `vectors, beyond the ${measured.toPrecision(3)} passes the most-repeated measured run made: the data law ` +
          `is extrapolated in repetition`;
        d.warnings.push(w);
        record.beyond_measured_passes = true;
      }
    }
    record.warnings = d.warnings;
    ctx.log(`${d.name}: ${d.value} (${d.source}${d.clamped ? ', clamped' : ''})`);
    for (const w of d.warnings) ctx.log(`warning: ${w}`);
    return { value: d.value, decision: record as Json };
  },
});
