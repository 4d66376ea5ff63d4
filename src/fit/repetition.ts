/**
 * Repeated data: the model of Muennighoff et al. 2023 ("Scaling Data-Constrained Language
 * Models", eq. 5). A run that trains on D vectors drawn from U unique ones makes
 * R = D / U - 1 repeated passes; repeated vectors are worth less than fresh ones, with a
 * value that decays with a half-life-like constant R*:
 *
 *   D' = U + U R* (1 - exp(-R / R*))
 *
 * D' is the effective (fresh-equivalent) data the Chinchilla data term sees. D' never
 * exceeds U (1 + R*): beyond that no amount of repetition helps. R* = 15.4 is their fit for
 * language models; for SAEs it is an assumption, stated wherever it is used.
 */

/** Muennighoff et al.'s fitted R*_D for language models. */
export const MUENNIGHOFF_R_STAR = 15.4;

export function effectiveData(D: number, U: number, rStar: number): number {
  if (D <= U) return D;
  const R = D / U - 1;
  return U + U * rStar * (1 - Math.exp(-R / rStar));
}

/** The D whose effective data is `target`; Infinity when repeating U vectors never gets there. */
export function dataForEffective(target: number, U: number, rStar: number): number {
  if (target <= U) return target;
  const x = (target / U - 1) / rStar;
  if (x >= 1) return Infinity;
  return U * (1 - rStar * Math.log(1 - x));
}

export function describeRepetition(rStar: number): string {
  return (
    `effective data D' = U + U R* (1 - exp(-R/R*)), R = D/U - 1 repeated passes (Muennighoff et al. 2023), ` +
    `R* = ${rStar} assumed (their value for language models), not fitted`
  );
}
