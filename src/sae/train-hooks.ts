/**
 * The training loop's optional hooks, built from the train-sae params: the target-L0
 * controller (sparsity.ts) and dead-latent resampling (resample.ts). Both are off unless
 * asked for, so the seed's recipe runs unchanged.
 */
import { mulberry32 } from '../random.js';
import { SparsityController, type SparsityState } from './sparsity.js';
import { resampleDead } from './resample.js';
import type { TrainHooks } from './train.js';

export interface HookParams {
  target_l0?: number;
  lr: number;
  l0_controller_gain: number;
  l0_smoothing_steps: number;
  resample_dead_every: number;
  resample_dead_until: number;
  dead_window_samples: number;
  apply_b_dec_to_input: boolean;
  d_sae: number;
  batch_size: number;
  seed: number;
}

export interface HookedRun {
  hooks: TrainHooks;
  /** What the hooks did, for the outputs: the final lambda and the latents resampled. */
  summary(): { lambda_end: number | null; resampled: number; resample_events: number };
}

/** `rows()` draws a batch of training rows (never held-out ones) for resampling. */
export function trainingHooks(
  p: HookParams, steps: number, lWarmupSteps: number, dIn: number, rows: () => Promise<Float32Array>, log: (m: string) => void,
): HookedRun {
  const controller = p.target_l0 === undefined ? null : new SparsityController({
    target: p.target_l0, warmupSteps: lWarmupSteps, gain: p.l0_controller_gain, smoothingSteps: p.l0_smoothing_steps,
  });
  const resampleUntil = Math.floor(p.resample_dead_until * steps);
  const random = mulberry32((p.seed ^ 0x5eed) >>> 0);
  let resampled = 0;
  let events = 0;
  let lastLambda: number | null = null;
  const hooks: TrainHooks = {
    lambda: (step, scheduled) => (lastLambda = controller ? controller.lambda(step, scheduled) : scheduled),
    async afterStep({ step, stats, lambda, lr, engine }) {
      controller?.observe(step, stats.l0, lambda, lr / p.lr);
      const done = step + 1;
      if (p.resample_dead_every > 0 && done % p.resample_dead_every === 0 && done <= resampleUntil) {
        const state = await engine.snapshot();
        const x = await rows();
        const r = resampleDead(state, { dIn, dSae: p.d_sae, applyBDecToInput: p.apply_b_dec_to_input }, x, p.batch_size, p.dead_window_samples, random);
        events++;
        if (r.resampled > 0) {
          await engine.restore(r.state);
          resampled += r.resampled;
          log(`step ${done}: resampled ${r.resampled} dead latent(s) (no firing in ${p.dead_window_samples} samples)`);
        }
      }
    },
    state: () => ({ controller: controller?.state() ?? null, resampled, events }),
    restore(s) {
      const st = s as { controller: SparsityState | null; resampled: number; events: number } | undefined;
      if (!st) return;
      controller?.restore(st.controller ?? undefined);
      resampled = st.resampled;
      events = st.events;
    },
  };
  return { hooks, summary: () => ({ lambda_end: controller?.current() ?? lastLambda, resampled, resample_events: events }) };
}
