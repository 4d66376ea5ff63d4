/**
 * The seed's compute budget (the study's brief, "The compute budget"), as a function of its
 * inputs, so that a study states its cost in FLOPs and GPU-hours before spending it.
 *
 * - Data: Gemma Scope trained on 4e9 vectors; at log2(vocab) bits per token, that is
 *   4e9 * log2(256000) / log2(128000) = 4.24e9 Llama tokens; Llama-3.2-1B being half of
 *   Gemma-2-2B, the final SAE's data budget is half that: 2.12e9, which the seed rounds
 *   to 2.1e9 (two significant digits) before using it.
 * - Llama's first half, forward only, frozen: N_l * D FLOPs.
 * - SAE: 6 * (2 * d_in * d_sae) * D FLOPs (two matrices, forward + backward).
 * - Hours = FLOPs / (peak FLOP/s * utilisation); utilisation 1 reproduces the seed's 4.2 h.
 */

export interface SmallRunSpec {
  name?: string;
  /** One width or a list: the group is the cartesian product of d_sae and n_samples. */
  d_sae: number | number[];
  n_samples: number | number[];
  /** Repeats of each (d_sae, n_samples) pair, e.g. the learning rates of a sweep. */
  count?: number;
}

export interface BudgetInputs {
  gemma_scope_vectors: number;
  vocab_gemma: number;
  vocab_llama: number;
  model_size_ratio: number;
  llama_params: number;
  d_in: number;
  expansion_factor: number;
  d_sae?: number;
  gpu_peak_flops: number;
  utilization: number;
  dataset_rows?: number;
  round_data_budget: boolean;
  final_n_samples?: number;
  small_runs: SmallRunSpec[];
  /** The small runs' share of the final SAE's FLOPs above which the budget warns (the seed: 1/16). */
  small_fraction_limit: number;
}

export interface BudgetRow {
  item: string;
  flops: number | null;
  hours: number | null;
  note: string;
}

export interface SmallRunCost {
  group: string;
  d_sae: number;
  n_samples: number;
  count: number;
  flops: number;
  hours: number;
}

export interface Budget {
  tokens_equivalent: number;
  data_budget: number;
  data_budget_unrounded: number;
  data_budget_source: 'gemma-scope-equivalent' | 'final_n_samples';
  d_sae: number;
  llama_flops: number;
  llama_hours: number;
  final_sae_flops: number;
  final_sae_hours: number;
  small_runs: SmallRunCost[];
  small_total_flops: number;
  small_total_hours: number;
  /** small-run SAE FLOPs / final SAE FLOPs. */
  small_fraction: number;
  effective_flops_per_s: number;
  table: BudgetRow[];
  warnings: string[];
}

/** Training FLOPs of the SAE's two matrices: 6 (2 d_in d_sae) D. */
export function saeFlops(dIn: number, dSae: number, samples: number): number {
  return 6 * (2 * dIn * dSae) * samples;
}

/** Round to `digits` significant digits, as the seed does when it writes 2.1e9. */
export function roundSignificant(v: number, digits: number): number {
  return v === 0 ? 0 : Number(v.toPrecision(digits));
}

export function computeBudget(p: BudgetInputs): Budget {
  const warnings: string[] = [];
  const flopsPerS = p.gpu_peak_flops * p.utilization;
  const hours = (flops: number) => flops / flopsPerS / 3600;

  const tokensEquivalent = (p.gemma_scope_vectors * Math.log2(p.vocab_gemma)) / Math.log2(p.vocab_llama);
  const unrounded = tokensEquivalent * p.model_size_ratio;
  const fromOverride = p.final_n_samples !== undefined;
  const dataBudget = fromOverride
    ? p.final_n_samples!
    : p.round_data_budget
      ? roundSignificant(unrounded, 2)
      : unrounded;
  const dSae = p.d_sae ?? p.expansion_factor * p.d_in;

  const llamaFlops = p.llama_params * dataBudget;
  const finalFlops = saeFlops(p.d_in, dSae, dataBudget);
  const small = expandSmallRuns(p.small_runs).map((r) => {
    const flops = r.count * saeFlops(p.d_in, r.d_sae, r.n_samples);
    return { ...r, flops, hours: hours(flops) };
  });
  const smallTotal = small.reduce((s, r) => s + r.flops, 0);

  if (p.dataset_rows !== undefined) {
    warnPasses(warnings, 'final run', dataBudget, p.dataset_rows);
    warnSmallRunPasses(warnings, small, p.dataset_rows);
  }
  if (smallTotal > finalFlops) {
    warnings.push(`the small runs cost ${(smallTotal / finalFlops).toFixed(2)}x the final run: they are not small`);
  } else if (smallTotal > p.small_fraction_limit * finalFlops) {
    warnings.push(
      `the small runs cost ${pct(smallTotal / finalFlops)} of the final SAE, above the small-run budget of ` +
        `${pct(p.small_fraction_limit)} (small_fraction_limit${p.small_fraction_limit === 1 / 16 ? "; the seed's 1/16" : ''})`,
    );
  }

  const table: BudgetRow[] = [
    {
      item: 'data budget',
      flops: null,
      hours: null,
      note: fromOverride
        ? `final_n_samples = ${sci(dataBudget)} vectors`
        : `${sci(p.gemma_scope_vectors)} Gemma Scope vectors x log2(${p.vocab_gemma})/log2(${p.vocab_llama}) = ` +
          `${sci(tokensEquivalent, 3)} Llama tokens; x ${p.model_size_ratio} = ${sci(unrounded, 3)}` +
          (p.round_data_budget ? ` -> ${sci(dataBudget)} vectors` : ' vectors'),
    },
    {
      item: 'Llama first half, forward (N_l D)',
      flops: llamaFlops,
      hours: hours(llamaFlops),
      note: `N_l = ${sci(p.llama_params)}, D = ${sci(dataBudget)}`,
    },
    {
      item: `final SAE (6 * 2 d_in d_sae D)`,
      flops: finalFlops,
      hours: hours(finalFlops),
      note: `d_in = ${p.d_in}, d_sae = ${dSae}`,
    },
    ...small.map((r) => ({
      item: `small ${r.group}: d_sae=${r.d_sae}, D=${sci(r.n_samples)}${r.count > 1 ? ` x${r.count}` : ''}`,
      flops: r.flops,
      hours: r.hours,
      note: `${pct(r.flops / finalFlops)} of the final SAE`,
    })),
    {
      item: 'small runs, total',
      flops: smallTotal,
      hours: hours(smallTotal),
      note: `${pct(smallTotal / finalFlops)} of the final SAE`,
    },
  ];

  return {
    tokens_equivalent: tokensEquivalent,
    data_budget: dataBudget,
    data_budget_unrounded: unrounded,
    data_budget_source: fromOverride ? 'final_n_samples' : 'gemma-scope-equivalent',
    d_sae: dSae,
    llama_flops: llamaFlops,
    llama_hours: hours(llamaFlops),
    final_sae_flops: finalFlops,
    final_sae_hours: hours(finalFlops),
    small_runs: small,
    small_total_flops: smallTotal,
    small_total_hours: hours(smallTotal),
    small_fraction: smallTotal / finalFlops,
    effective_flops_per_s: flopsPerS,
    table,
    warnings,
  };
}

/** Each spec becomes one entry per (d_sae, n_samples) pair. */
function expandSmallRuns(
  specs: SmallRunSpec[],
): Array<{ group: string; d_sae: number; n_samples: number; count: number }> {
  const out: Array<{ group: string; d_sae: number; n_samples: number; count: number }> = [];
  specs.forEach((spec, i) => {
    const widths = Array.isArray(spec.d_sae) ? spec.d_sae : [spec.d_sae];
    const samples = Array.isArray(spec.n_samples) ? spec.n_samples : [spec.n_samples];
    const count = spec.count ?? 1;
    for (const [field, v] of [
      ...widths.map((w) => ['d_sae', w] as const),
      ...samples.map((s) => ['n_samples', s] as const),
      ['count', count] as const,
    ]) {
      if (!(typeof v === 'number' && v > 0))
        throw new Error(`flop-budget: small_runs[${i}].${field} = ${JSON.stringify(v)} must be a positive number`);
    }
    for (const d of widths)
      for (const n of samples) out.push({ group: spec.name ?? `#${i}`, d_sae: d, n_samples: n, count });
  });
  return out;
}

function warnPasses(warnings: string[], what: string, samples: number, rows: number): void {
  if (samples > rows) {
    warnings.push(
      `${what}: ${sci(samples)} vectors exceed the dataset's ${rows.toLocaleString('en-US')} rows: ` +
        `${(samples / rows).toFixed(1)} passes over the same vectors`,
    );
  }
}

/** One statement per group of small runs (a sweep's runs share the cause), not a line per run. */
function warnSmallRunPasses(
  warnings: string[],
  small: Array<{ group: string; d_sae: number; n_samples: number; count: number }>,
  rows: number,
) {
  for (const group of new Set(small.map((r) => r.group))) {
    const runs = small.filter((r) => r.group === group);
    const over = runs.filter((r) => r.n_samples > rows);
    if (!over.length) continue;
    const runCount = (rs: typeof runs) => rs.reduce((n, r) => n + r.count, 0);
    const widths = [...new Set(over.map((r) => r.d_sae))].sort((a, b) => a - b);
    const lo = Math.min(...over.map((r) => r.n_samples));
    const hi = Math.max(...over.map((r) => r.n_samples));
    warnings.push(
      `small runs ${group}: ${runCount(over)} of ${runCount(runs)} exceed the dataset's ${rows.toLocaleString('en-US')} rows ` +
        `(d_sae ${widths.join(', ')} at ${lo === hi ? sci(lo) : `${sci(lo)}-${sci(hi)}`} vectors): ` +
        `up to ${(hi / rows).toFixed(1)} passes over the same vectors`,
    );
  }
}

function sci(v: number, digits = 2): string {
  return v.toExponential(digits - 1).replace('e+', 'e');
}

function pct(f: number): string {
  return `${(100 * f).toPrecision(3)}%`;
}
