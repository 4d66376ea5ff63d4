/**
 * Sparsity as a controlled variable: the coefficient lambda is steered so that a run ends at
 * a target L0, so that runs of different widths and data sizes are compared at matched
 * sparsity (as Gao et al. 2024 compare at fixed k, and Gemma Scope along the L0 frontier).
 *
 * During the sparsity warm-up lambda follows the seed's linear ramp to the configured
 * coefficient (the controller's first guess). After it, an integral controller on log lambda:
 * each step, log lambda += gain * (lr / peak lr) * clip(ln(L0_smoothed / target), -1, 1), where
 * L0_smoothed is an exponential moving average of the batch L0. Multiplicative, so it works at
 * any scale of lambda; the clip bounds the change per step (at gain 0.005, at most 0.5%).
 */

export interface TargetL0Options {
  target: number;
  /** Steps of the linear warm-up (lambda follows the schedule until then). */
  warmupSteps: number;
  /** Per-step change of log lambda per unit of log error. */
  gain: number;
  /** Time constant (steps) of the moving average of the batch L0. */
  smoothingSteps: number;
}

export interface SparsityState {
  logLambda: number | null;
  smoothedL0: number | null;
}

export class SparsityController {
  private logLambda: number | null = null;
  private smoothedL0: number | null = null;

  constructor(readonly o: TargetL0Options) {
    if (!(o.target > 0)) throw new Error(`target_l0 must be positive, got ${o.target}`);
  }

  /** The lambda of `step`: the schedule's during the warm-up, the controller's after. */
  lambda(step: number, scheduled: number): number {
    return step < this.o.warmupSteps || this.logLambda === null ? scheduled : Math.exp(this.logLambda);
  }

  /**
   * After each step: its batch L0, the lambda it used, and its lr relative to the peak. The
   * L0 answers lambda only as fast as the optimiser moves the thresholds, so the gain scales
   * with the lr: no wind-up while the lr warms up or decays to zero.
   */
  observe(step: number, l0: number, lambdaUsed: number, lrScale = 1): void {
    if (!Number.isFinite(l0)) return;
    this.smoothedL0 = this.smoothedL0 === null ? l0 : this.smoothedL0 + (l0 - this.smoothedL0) / this.o.smoothingSteps;
    if (step + 1 < this.o.warmupSteps) return;
    if (this.logLambda === null) this.logLambda = Math.log(Math.max(lambdaUsed, 1e-12));
    const error = Math.log(Math.max(this.smoothedL0, 1e-3) / this.o.target);
    this.logLambda += this.o.gain * lrScale * Math.max(-1, Math.min(1, error));
  }

  /** The lambda the controller ends at (null before the warm-up ended). */
  current(): number | null {
    return this.logLambda === null ? null : Math.exp(this.logLambda);
  }

  state(): SparsityState {
    return { logLambda: this.logLambda, smoothedL0: this.smoothedL0 };
  }

  restore(s: SparsityState | undefined): void {
    if (!s) return;
    this.logLambda = s.logLambda;
    this.smoothedL0 = s.smoothedL0;
  }
}

/** Whether a held-out L0 is within a relative tolerance of the target. */
export function withinTolerance(l0: number, target: number, tolerance: number): boolean {
  return Math.abs(l0 - target) <= tolerance * target;
}
