/**
 * Is a fitted law identified? A law whose parameters the data do not pin down can still
 * produce a number, and a decision taken from that number is noise. Two diagnostics, both
 * standard for nonlinear least squares (Bates & Watts 1988; Belsley, Kuh & Welsch 1980):
 *
 * - the condition number of the fit's Jacobian (derivatives of the log predictions with
 *   respect to the optimiser's coordinates at the best fit), columns scaled to unit length
 *   so that units do not count: a large value means some combination of parameters barely
 *   changes the predictions (e.g. A and alpha trading off when N spans little);
 * - the bootstrap interval widths: for a positive coefficient (A, B, E, a, c) the ratio
 *   hi / lo, a power term's coefficient taken at the geometric centre of the data on its axis
 *   (A N_c^-alpha, not A, the term at N = 1: that would judge the units the axis is counted in,
 *   see centredCoefficients in fit.ts); for an exponent (alpha, beta, b) the width hi - lo relative to |value|, or, failing
 *   that, what the width does to the law across the measured range: exp((hi - lo) ln(span of
 *   its axis)) at most a stated factor. The second test is for exponents near zero: a relative
 *   width can never pass there (an interval that contains 0 is at least |value| wide however
 *   narrow it is: the coefficient of variation of a quantity near zero diverges), yet a law
 *   whose exponent is pinned to within +-0.05 says something definite ("the optimal lr does not
 *   move with the width, within 10% over the data").
 *
 * Design checks (points per parameter, span of each axis) are reported beside them as
 * warnings: they explain an unidentified law, they do not decide it.
 */
import type { Law } from './laws.js';

export interface IdentificationRule {
  /** Largest acceptable column-scaled condition number of the Jacobian. */
  maxCondition: number;
  /** Largest acceptable hi / lo of a positive coefficient's interval. */
  maxIntervalRatio: number;
  /** An exponent is pinned when (hi - lo) / |value| is at most this... */
  maxExponentWidth: number;
  /** ...or when its interval's width moves the law by at most this factor across its axis's span. */
  maxExponentFactor: number;
  /** Design: distinct points per parameter, and max / min of each axis. */
  minPointsPerParameter: number;
  minSpan: number;
}

export const DEFAULT_RULE: IdentificationRule = {
  maxCondition: 1e3,
  maxIntervalRatio: 100,
  maxExponentWidth: 1,
  maxExponentFactor: 2,
  minPointsPerParameter: 3,
  minSpan: 8,
};

export interface Identification {
  identified: boolean;
  /** Column-scaled condition number of the Jacobian; null when it is singular. */
  condition_number: number | null;
  /**
   * Per parameter: hi / lo (coefficients) or (hi - lo) / |value| (exponents); null without an
   * interval. A power term's coefficient (A, B, a) is judged at the data's centre (A N_c^-alpha),
   * so its spread is not the ratio of its published interval (fit.json's intervals.A), which
   * depends on the units of the axis.
   */
  interval_spread: Record<string, number | null>;
  points_per_parameter: number;
  /** Per axis (x, or N and D): largest / smallest fitted value. */
  span: Record<string, number>;
  /** Why the law is not identified (empty when it is). */
  reasons: string[];
  /** Design shortfalls (fewer points or a narrower span than the rule asks). */
  design_warnings: string[];
  rule: string;
}

/** Exponents are the parameters a law multiplies a log by; the rest are positive coefficients. */
const EXPONENTS = new Set(['b', 'alpha', 'beta']);
/** The axis each exponent multiplies the log of. */
const EXPONENT_AXIS: Record<string, string> = { b: 'x', alpha: 'N', beta: 'D' };

export function identify(
  law: Law,
  theta: Float64Array,
  logFeatures: number[][],
  params: Record<string, number>,
  intervals: Record<string, [number, number] | null>,
  axes: Record<string, number[]>,
  rule: IdentificationRule = DEFAULT_RULE,
  judgeIntervals = true,
  /** Per coefficient: where its interval was taken, when not at the law's own parameter (e.g. "at the data's centre N = 90"). */
  where: Record<string, string> = {},
): Identification {
  const reasons: string[] = [];
  const condition = conditionNumber(law, theta, logFeatures);
  if (condition === null)
    reasons.push('the Jacobian of the fit is singular: some parameter combination does not change the predictions');
  else if (condition > rule.maxCondition) {
    reasons.push(
      `condition number ${fmt(condition)} > ${fmt(rule.maxCondition)}: parameters trade off against each other`,
    );
  }
  const spread: Record<string, number | null> = {};
  for (const name of law.paramNames) {
    const iv = intervals[name];
    if (!judgeIntervals) {
      spread[name] = null;
      continue;
    }
    if (!iv) {
      spread[name] = null;
      reasons.push(`${name} has no bootstrap interval`);
      continue;
    }
    if (EXPONENTS.has(name)) {
      const width = (iv[1] - iv[0]) / Math.abs(params[name]);
      const values = axes[EXPONENT_AXIS[name]] ?? [];
      const factor = Math.exp((iv[1] - iv[0]) * Math.log(Math.max(...values) / Math.min(...values)));
      spread[name] = Number.isFinite(width) ? width : null;
      if (!(width <= rule.maxExponentWidth) && !(factor <= rule.maxExponentFactor)) {
        reasons.push(
          `${name}'s interval [${fmt(iv[0])}, ${fmt(iv[1])}] is ${fmt(width)}x |${name}| wide (limit ` +
            `${rule.maxExponentWidth}x) and moves the law by a factor ${fmt(factor)} across the measured range ` +
            `(limit ${rule.maxExponentFactor})`,
        );
      }
    } else {
      const ratio = iv[1] / iv[0];
      spread[name] = Number.isFinite(ratio) ? ratio : null;
      if (!(ratio <= rule.maxIntervalRatio)) {
        const at = where[name] ? ` (judged ${where[name]})` : '';
        reasons.push(
          `${name}'s interval${at} [${fmt(iv[0])}, ${fmt(iv[1])}] spans a factor ${fmt(ratio)} ` +
            `(limit ${rule.maxIntervalRatio})`,
        );
      }
    }
  }
  const distinct = new Set(logFeatures.map((f) => f.join(','))).size;
  const perParameter = distinct / law.paramNames.length;
  const design: string[] = [];
  if (perParameter < rule.minPointsPerParameter) {
    design.push(
      `${distinct} distinct points for ${law.paramNames.length} parameters (${fmt(perParameter)} per parameter; ` +
        `the design rule asks ${rule.minPointsPerParameter})`,
    );
  }
  const span: Record<string, number> = {};
  for (const [axis, values] of Object.entries(axes)) {
    span[axis] = Math.max(...values) / Math.min(...values);
    if (span[axis] < rule.minSpan)
      design.push(`${axis} spans ${fmt(span[axis])}x (the design rule asks ${rule.minSpan}x)`);
  }
  return {
    identified: reasons.length === 0,
    condition_number: condition,
    interval_spread: spread,
    points_per_parameter: perParameter,
    span,
    reasons,
    design_warnings: design,
    rule: describeRule(rule) + (judgeIntervals ? '' : ' (bootstrap off: judged on the condition number alone)'),
  };
}

export function describeRule(rule: IdentificationRule): string {
  return (
    `identified when the column-scaled condition number of the Jacobian is <= ${fmt(rule.maxCondition)}, every ` +
    `coefficient's interval (a power term's taken at the data's geometric centre, not at 1 on its axis) spans a ` +
    `factor <= ${rule.maxIntervalRatio} and every exponent's interval is <= ` +
    `${rule.maxExponentWidth}x its |value| wide or moves the law by a factor <= ${rule.maxExponentFactor} across ` +
    `the measured range; design: >= ${rule.minPointsPerParameter} points per parameter, ` +
    `each axis spanning >= ${rule.minSpan}x`
  );
}

/**
 * Column-scaled condition number of J[i][j] = d log prediction_i / d theta_j (central
 * differences), from the eigenvalues of the k x k matrix J^T J; null when singular.
 */
export function conditionNumber(law: Law, theta: Float64Array, logFeatures: number[][]): number | null {
  const k = theta.length;
  const J = logFeatures.map((f) => {
    const row = new Float64Array(k);
    for (let j = 0; j < k; j++) {
      const h = 1e-5 * Math.max(1, Math.abs(theta[j]));
      const up = Float64Array.from(theta);
      const down = Float64Array.from(theta);
      up[j] += h;
      down[j] -= h;
      row[j] = (law.logPredict(up, f) - law.logPredict(down, f)) / (2 * h);
    }
    return row;
  });
  const norms = Array.from({ length: k }, (_, j) => Math.sqrt(J.reduce((s, row) => s + row[j] * row[j], 0)));
  if (norms.some((n) => !(n > 0))) return null;
  const gram = Array.from({ length: k }, (_, a) =>
    Array.from({ length: k }, (_, b) => J.reduce((s, row) => s + (row[a] / norms[a]) * (row[b] / norms[b]), 0)),
  );
  const eig = symmetricEigenvalues(gram);
  const max = Math.max(...eig);
  const min = Math.min(...eig);
  if (!(min > 1e-14 * max)) return null;
  return Math.sqrt(max / min);
}

/** Eigenvalues of a small symmetric matrix by cyclic Jacobi rotations. */
export function symmetricEigenvalues(m: number[][]): number[] {
  const a = m.map((row) => [...row]);
  const n = a.length;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (a[p][q] === 0) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let r = 0; r < n; r++) {
          const arp = a[r][p];
          const arq = a[r][q];
          a[r][p] = c * arp - s * arq;
          a[r][q] = s * arp + c * arq;
        }
        for (let r = 0; r < n; r++) {
          const apr = a[p][r];
          const aqr = a[q][r];
          a[p][r] = c * apr - s * aqr;
          a[q][r] = s * apr + c * aqr;
        }
      }
    }
  }
  return a.map((row, i) => row[i]);
}

function fmt(v: number): string {
  return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : String(+v.toPrecision(3));
}
