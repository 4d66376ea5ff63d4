/**
 * The run record: what a training run's data and sparsity were, beside its eval. Appended to
 * metrics.jsonl as a `{"type": "run"}` line (the report reads it) and merged into the `eval`
 * output. Deterministic: no timings.
 */
import { appendFileSync } from 'node:fs';
import { withinTolerance } from './sparsity.js';
import type { MetricsRun, RunRecord } from '../formats/metrics.js';

export function runRecord(
  p: { batch_size: number; target_l0?: number; l0_tolerance: number },
  steps: number,
  trainRows: number,
  heldOutL0: number,
  hooks: { lambda_end: number | null; resampled: number },
  metricsFile: string,
  log: (m: string) => void,
): RunRecord {
  const samples = steps * p.batch_size;
  const target = p.target_l0 ?? null;
  const within = target === null ? null : withinTolerance(heldOutL0, target, p.l0_tolerance);
  if (target !== null && !within) {
    log(`warning: held-out L0 ${heldOutL0.toPrecision(3)} is outside ${100 * p.l0_tolerance}% of target_l0 ${target}`);
  }
  const record: RunRecord = {
    train_rows: trainRows,
    unique_samples: Math.min(samples, trainRows),
    passes: samples / trainRows,
    target_l0: target,
    l0_tolerance: target === null ? null : p.l0_tolerance,
    l0_within_tolerance: within,
    lambda_end: hooks.lambda_end,
    resampled: hooks.resampled,
  };
  const line: MetricsRun = { type: 'run', ...record };
  appendFileSync(metricsFile, JSON.stringify(line) + '\n');
  return record;
}
