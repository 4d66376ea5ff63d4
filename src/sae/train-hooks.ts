/**
 * The training loop's optional hooks, built from the train-sae params: the target-L0
 * controller (sparsity.ts) and dead-latent resampling (resample.ts). Both are off unless
 * asked for, so the seed's recipe runs unchanged.
 */
import { mulberry32 } from '../random.js';
import { SparsityController, type SparsityState } from './sparsity.js';
import { resampleDead } from './resample.js';
import type { BatchSource, TrainHooks } from './train.js';

export interface HookParams {
  target_l0?: number;
  lr: number;
  l0_controller_gain: number;
  l0_controller_damping: number;
  l0_controller_clip: number;
  l0_smoothing_steps: number;
  resample_dead_every: number;
  resample_dead_until: number;
  dead_window_samples: number;
  apply_b_dec_to_input: boolean;
  d_sae: number;
  batch_size: number;
  seed: number;
}

/** What a checkpoint keeps of the hooks. */
interface HookState {
  controller: SparsityState | null;
  resampled: number;
  events: number;
  random: number;
  rows: unknown;
}

export interface HookedRun {
  hooks: TrainHooks;
  /** What the hooks did, for the outputs: the final lambda and the latents resampled. */
  summary(): { lambda_end: number | null; resampled: number; resample_events: number };
}

/**
 * `rows` gives batches of training rows (never held-out ones) for resampling. Its cursor and the
 * resampler's random stream are part of the hooks' state, so a resumed run resamples exactly
 * as an uninterrupted one.
 */
export function trainingHooks(
  p: HookParams,
  steps: number,
  lWarmupSteps: number,
  dIn: number,
  rows: Pick<BatchSource, 'next' | 'state' | 'restore'>,
  log: (m: string) => void,
): HookedRun {
  const controller =
    p.target_l0 === undefined
      ? null
      : new SparsityController({
          target: p.target_l0,
          warmupSteps: lWarmupSteps,
          gain: p.l0_controller_gain,
          smoothingSteps: p.l0_smoothing_steps,
          damping: p.l0_controller_damping,
          clip: p.l0_controller_clip,
        });
  const resampleUntil = Math.floor(p.resample_dead_until * steps);
  let random = mulberry32((p.seed ^ 0x5eed) >>> 0);
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
        const x = await rows.next();
        const r = resampleDead(
          state,
          { dIn, dSae: p.d_sae, applyBDecToInput: p.apply_b_dec_to_input },
          x,
          p.batch_size,
          p.dead_window_samples,
          random,
        );
        events++;
        if (r.resampled > 0) {
          await engine.restore(r.state);
          resampled += r.resampled;
          log(`step ${done}: resampled ${r.resampled} dead latent(s) (no firing in ${p.dead_window_samples} samples)`);
        }
      }
    },
    state: (): HookState => ({
      controller: controller?.state() ?? null,
      resampled,
      events,
      random: random.state(),
      rows: rows.state(),
    }),
    restore(s) {
      const st = s as HookState | undefined;
      if (!st) return;
      controller?.restore(st.controller ?? undefined);
      resampled = st.resampled;
      events = st.events;
      // mulberry32's whole state is its counter: seeding with it continues the stream. (A
      // checkpoint written before these were kept has neither.)
      if (st.random !== undefined) random = mulberry32(st.random);
      if (st.rows !== undefined) rows.restore(st.rows);
    },
  };
  return {
    hooks,
    summary: () => ({ lambda_end: controller?.current() ?? lastLambda, resampled, resample_events: events }),
  };
}
