/**
 * `flop-budget`: the seed's compute budget (FLOPs and GPU-hours of the Llama half, the final
 * SAE and every planned small run). Adapter only; the arithmetic lives in src/budget/flops.ts.
 */
import { Type } from '@sinclair/typebox';
import { defineStage, type Json } from '../runtime/stage.js';
import { computeBudget } from '../budget/flops.js';

const NumberOrList = Type.Union([
  Type.Number({ exclusiveMinimum: 0 }),
  Type.Array(Type.Number({ exclusiveMinimum: 0 })),
]);

const SmallRun = Type.Object(
  {
    name: Type.Optional(Type.String({ description: 'Label of the group in the table (e.g. "loss sweep")' })),
    d_sae: NumberOrList,
    n_samples: NumberOrList,
    count: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Runs per (d_sae, n_samples) pair, e.g. learning rates tried' }),
    ),
  },
  { additionalProperties: false },
);

const Params = Type.Object(
  {
    gemma_scope_vectors: Type.Number({
      default: 4e9,
      description: "Vectors Gemma Scope's smallest MLP-output SAEs were trained on",
    }),
    vocab_gemma: Type.Number({ default: 256000, description: 'Gemma-2-2B vocabulary size' }),
    vocab_llama: Type.Number({ default: 128000, description: 'Llama-3.2 vocabulary size' }),
    model_size_ratio: Type.Number({
      default: 0.5,
      description: 'Llama-3.2-1B size / Gemma-2-2B size: scales the data budget',
    }),
    llama_params: Type.Number({ default: 1.2e9, description: "N_l, Llama's parameter count (the seed: 1.2e9)" }),
    d_in: Type.Integer({ default: 2048, minimum: 1 }),
    expansion_factor: Type.Number({ default: 8, description: 'd_sae = expansion_factor * d_in unless d_sae is given' }),
    d_sae: Type.Optional(Type.Integer({ minimum: 1, description: "Final SAE's width" })),
    gpu_peak_flops: Type.Number({
      default: 165e12,
      description: 'Peak FLOP/s (RTX 4090, 16-bit tensor with 32-bit accumulate)',
    }),
    utilization: Type.Number({
      default: 1.0,
      exclusiveMinimum: 0,
      maximum: 1,
      description: 'Fraction of peak achieved. 1.0 reproduces the seed (4.2 h); real training reaches far less',
    }),
    dataset_rows: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'Rows in the dataset (668501): warns when a data budget needs several passes',
      }),
    ),
    round_data_budget: Type.Boolean({
      default: true,
      description: 'Round the data budget to 2 significant digits as the seed does (2.12e9 -> 2.1e9)',
    }),
    final_n_samples: Type.Optional(
      Type.Number({ exclusiveMinimum: 0, description: 'Override of the final data budget (vectors)' }),
    ),
    small_fraction_limit: Type.Number({
      default: 0.0625,
      exclusiveMinimum: 0,
      description: "The small runs' share of the final SAE's FLOPs above which the budget warns (the seed's 1/16)",
    }),
    small_runs: Type.Array(SmallRun, {
      default: [],
      description:
        'Planned small runs: each item is the cartesian product of its d_sae and n_samples lists, times count',
    }),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'flop-budget',
  version: '1',
  description:
    'Compute budget of the study, as the seed computes it: data budget from Gemma Scope (tokens-equivalent by vocabulary ' +
    'entropy, scaled by model size), Llama-half FLOPs N_l*D, SAE FLOPs 6*(2*d_in*d_sae)*D, hours at peak*utilization, ' +
    'and the cost of every planned small run relative to the final one.',
  params: Params,
  outputs: {
    budget: { kind: 'value', description: 'All figures, a `table` of {item, flops, hours, note} rows and `warnings`' },
    data_budget: { kind: 'value', description: 'Vectors for the final SAE (the seed: 2.1e9)' },
    final_sae_flops: { kind: 'value', description: 'FLOPs of the final SAE training (the seed: 8.5e17)' },
    small_fraction: { kind: 'value', description: 'Small runs SAE FLOPs / final SAE FLOPs' },
  },
  async run(ctx) {
    const budget = computeBudget(ctx.params);
    for (const row of budget.table) {
      const cost = row.flops === null ? '' : `${row.flops.toExponential(2)} FLOPs, ${row.hours!.toPrecision(3)} h: `;
      ctx.log(`${row.item}: ${cost}${row.note}`);
    }
    for (const w of budget.warnings) ctx.log(`warning: ${w}`);
    return {
      budget: budget as unknown as Json,
      data_budget: budget.data_budget,
      final_sae_flops: budget.final_sae_flops,
      small_fraction: budget.small_fraction,
    };
  },
});
