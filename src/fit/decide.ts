/**
 * A decision taken from a law: the value the next run uses, and why. A law that is not
 * identified (or gave no value) does not decide: a stated fallback rule does. The value is
 * then clamped to stated bounds. Every fallback and clamp is in the record, which the
 * outputs carry and the report shows.
 */
import type { DecisionRecord } from '../formats/fit.js';

export interface DecisionInput {
  /** What is decided, e.g. "final learning rate". */
  name: string;
  /** The law's value (null: the law gave none). */
  lawValue: number | null;
  identified: boolean;
  /** Why the law is not identified (shown when it falls back). */
  reasons: string[];
  fallback: number;
  fallbackRule: string;
  clamp?: { min?: number; max?: number; rule: string };
  /** Further warnings to carry with the decision (e.g. extrapolated repetition). */
  warnings?: string[];
}

/** The decision record (DecisionRecord in src/formats/fit.ts: the report reads it). */
export function decide(d: DecisionInput): DecisionRecord {
  const warnings: string[] = [];
  const usable = d.identified && d.lawValue !== null && Number.isFinite(d.lawValue) && d.lawValue > 0;
  let value: number;
  let source: DecisionRecord['source'];
  if (usable) {
    value = d.lawValue!;
    source = 'law';
  } else {
    value = d.fallback;
    source = 'fallback';
    const why = !d.identified
      ? `the law is not identified (${d.reasons.join('; ') || 'no reason given'})`
      : 'the law gave no usable value';
    warnings.push(
      `FALLBACK: ${d.name} = ${fmt(value)} from the rule "${d.fallbackRule}", because ${why}` +
        (d.lawValue !== null && Number.isFinite(d.lawValue)
          ? `; the law's value would have been ${fmt(d.lawValue)}`
          : ''),
    );
  }
  let clamped: DecisionRecord['clamped'] = null;
  const lo = d.clamp?.min ?? -Infinity;
  const hi = d.clamp?.max ?? Infinity;
  if (value < lo || value > hi) {
    const to = Math.min(hi, Math.max(lo, value));
    clamped = { from: value, to, rule: d.clamp!.rule };
    warnings.push(`CLAMP: ${d.name} ${fmt(value)} clamped to ${fmt(to)} (${d.clamp!.rule})`);
    value = to;
  }
  warnings.push(...(d.warnings ?? []));
  return {
    name: d.name,
    value,
    source,
    law_value: d.lawValue,
    identified: d.identified,
    fallback_rule: d.fallbackRule,
    clamped,
    reasons: d.reasons,
    warnings,
  };
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || Math.abs(v) < 1e-3 ? v.toExponential(3) : String(+v.toPrecision(4));
}
