/**
 * Learning-rate and sparsity-coefficient schedules, exactly as the seed notebook defines them
 * (step is 0-based, the value is the one used for that step's update).
 */

/** Linear warm-up to 1 over `warmup` steps, then cosine decay to 0 at `total` (or constant). */
export function lrFactor(step: number, warmup: number, total: number, decay: 'cosine' | 'none'): number {
  if (step < warmup) return (1 + step) / warmup;
  if (decay === 'none' || total <= warmup) return 1;
  const progress = Math.min(1, (step - warmup) / (total - warmup));
  return 0.5 * (1 + Math.cos(Math.PI * progress));
}

/** Sparsity coefficient lambda: rises linearly to `max` over `warmup` steps (seed: (step+1)/warmup). */
export function lambdaAt(step: number, warmup: number, max: number): number {
  if (warmup <= 0 || step >= warmup) return max;
  return max * ((step + 1) / warmup);
}
