/**
 * The identification limits of a fitted law (src/fit/identify.ts), as stage params: fit-law and
 * lr-law judge their laws by the same rule, so they declare its limits once, here.
 */
import { Type } from '@sinclair/typebox';
import type { FitOptions } from '../fit/fit.js';

export const identificationParams = {
  max_condition: Type.Number({
    exclusiveMinimum: 0,
    default: 1e3,
    description: 'Identified only if the column-scaled condition number of the Jacobian is at most this',
  }),
  max_interval_ratio: Type.Number({
    exclusiveMinimum: 1,
    default: 100,
    description:
      "Identified only if every positive coefficient's interval has hi / lo at most this (a power term's coefficient " +
      "taken at the data's geometric centre on its axis: A N_c^-alpha, not A, which depends on the axis's units)",
  }),
  max_exponent_width: Type.Number({
    exclusiveMinimum: 0,
    default: 1,
    description: "Identified only if every exponent's interval is at most this many times |exponent| wide",
  }),
  max_exponent_factor: Type.Number({
    minimum: 1,
    default: 2,
    description:
      'An exponent wider than max_exponent_width is still pinned if its interval moves the law by at most this ' +
      'factor across the measured range (exponents near zero)',
  }),
};

/** The rule's limits from a stage's params, as fitLaw takes them. */
export function identificationRule(p: {
  max_condition: number;
  max_interval_ratio: number;
  max_exponent_width: number;
  max_exponent_factor: number;
}): FitOptions['identification'] {
  return {
    maxCondition: p.max_condition,
    maxIntervalRatio: p.max_interval_ratio,
    maxExponentWidth: p.max_exponent_width,
    maxExponentFactor: p.max_exponent_factor,
  };
}
