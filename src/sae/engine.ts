/**
 * The training engine: one JumpReLU SAE step, defined once per compute backend.
 *
 * The training loop (train.ts), the checkpoints, the export and the metrics talk to an
 * SaeEngine only, so they never know which backend runs. Every backend implements the
 * same math (jumprelu.ts documents it; the tfjs engine is the reference that the others
 * are tested against within float32 tolerances):
 *
 *   x' = x - b_dec (if applyBDecToInput)     z = x' W_enc + b_enc     thr = exp(log_threshold)
 *   s = 1{z > thr}    f = z * s    x_hat = f W_dec + b_dec
 *   rec = mean_b sum_d (x_hat - x)^2    L0 = mean_b sum_j s    loss = rec + lambda * L0
 *
 * then closed-form gradients (straight-through threshold gradient with a rectangle kernel of
 * width `bandwidth`; the decoder gradient projected orthogonal to each unit-norm decoder row),
 * Adam with PyTorch's rule in three groups (ADAM_GROUPS), decoder rows renormalised to unit
 * norm, and the samples-since-fired counter updated from the batch's firings.
 */
import {
  ADAM_GROUPS,
  mapParams,
  PARAM_NAMES,
  paramShape,
  type ParamName,
  type AdamState,
  type SaeConfig,
  type SaeWeights,
  type StepStats,
} from './jumprelu.js';
import { freeNow } from '../util/free-now.js';

/** The engines, in the order `backend: auto` tries them. */
export const ENGINE_NAMES = ['cuda', 'tensorflow', 'native', 'wasm', 'cpu'] as const;
export type EngineName = (typeof ENGINE_NAMES)[number];
/** What a user may ask for in `backend:`. */
export type BackendChoice = 'auto' | EngineName;

/** Everything a training run needs to continue exactly: checkpoints store it, resampling edits it. */
export interface EngineState {
  weights: SaeWeights;
  adam: AdamState;
  /** Training samples seen since each feature last fired (dead-feature counter), [d_sae]. */
  sinceFired: Float32Array;
}

/** Forward-only statistics of a batch: summed squared error, summed active count, firings per feature. */
export interface EvalStats {
  sqErr: number;
  active: number;
  fired: Float32Array;
}

/** Which engine runs, on what: recorded in the metrics, the outputs and the report. */
export interface EngineInfo {
  name: EngineName;
  /** Human description, e.g. "CPU (OpenBLAS 0.3.21 Haswell)" or "NVIDIA H200 (cuBLAS 13.0)" (the threads are `threads`). */
  device: string;
  /** Threads (CPU engines) or worker threads (tfjs model parallel); 1 on a GPU. */
  threads: number;
}

export interface EngineOptions {
  cfg: SaeConfig;
  /** Start state: weights, and Adam moments / counters when resuming (zeros otherwise). */
  init: { weights: SaeWeights; adam?: AdamState; sinceFired?: Float32Array };
  /**
   * The caller will not use `init` again: an engine that copies it (native, cuda) frees it at
   * once rather than leaving a model's worth of garbage to the collector.
   */
  initDisposable?: boolean;
  /** CPU threads (native) or worker threads (wasm/cpu model parallel). */
  threads: number;
  /** GPU engines only: allow TF32 matmuls (an explicit opt-in; float32 otherwise). */
  allowTf32?: boolean;
  /** Rows per training batch, for engines that check device memory before allocating. */
  batchSize?: number;
}

/**
 * One SAE living in a backend. Methods may be synchronous or asynchronous (worker-based
 * engines); the loop always awaits. Arrays passed in are not retained after the call returns.
 */
export interface SaeEngine {
  readonly info: EngineInfo;
  /** One optimisation step on `rows` x d_in values of `x` (already normalised); stats are from before the update. */
  trainStep(x: Float32Array, rows: number, lambda: number, lr: number): StepStats | Promise<StepStats>;
  /** Forward pass only on the first `rows` rows of `x`. */
  evaluate(x: Float32Array, rows: number): EvalStats | Promise<EvalStats>;
  /** Fraction of features that did not fire in the last `windowSamples` training samples. */
  deadFraction(windowSamples: number): number | Promise<number>;
  /** A copy of the whole state (new arrays, owned by the caller). */
  snapshot(): EngineState | Promise<EngineState>;
  /**
   * The state one array at a time, for engines whose state lives outside JS (native, cuda):
   * checkpoints and the export then hold one array in JS, not a second copy of the model.
   * Engines without it are read through one snapshot (stateReader).
   */
  readState?(): StateReader;
  /**
   * Frees what only training needs (Adam moments, step scratch) once the last step ran, so that
   * the evaluation and the weights' export do not add to the training's peak memory. Only
   * evaluate, deadFraction, the weights and dispose may follow. Engines without it keep all.
   */
  endTraining?(): void | Promise<void>;
  /** Replaces the whole state (e.g. after resampling dead features). */
  restore(state: EngineState): void | Promise<void>;
  dispose(): void | Promise<void>;
}

/** One array of the state: 'weights.W_enc', 'adam.m.b_dec', 'adam.v.log_threshold', 'sinceFired'. */
export type StatePath = `weights.${ParamName}` | `adam.${'m' | 'v'}.${ParamName}` | 'sinceFired';

/** Reads an engine's state array by array (each a copy owned by the caller). */
export interface StateReader {
  adamSteps: number[];
  array(path: StatePath): Float32Array | Promise<Float32Array>;
  /** Values [offset, offset + count) of an array, in whole rows: a checkpoint then holds one chunk in JS. */
  range?(path: StatePath, offset: number, count: number): Float32Array | Promise<Float32Array>;
}

export async function stateReader(engine: SaeEngine): Promise<StateReader> {
  if (engine.readState) return engine.readState();
  const s = await engine.snapshot();
  return {
    adamSteps: s.adam.steps,
    array(path) {
      if (path === 'sinceFired') return s.sinceFired;
      const [group, ...rest] = path.split('.');
      const name = rest.pop() as ParamName;
      return group === 'weights' ? s.weights[name] : s.adam[rest[0] as 'm' | 'v'][name];
    },
  };
}

/** The weights alone, one array at a time where the engine allows (the final snapshot for export). */
export async function readWeights(engine: SaeEngine): Promise<SaeWeights> {
  const reader = await stateReader(engine);
  const weights: Partial<SaeWeights> = {};
  for (const n of PARAM_NAMES) weights[n] = await reader.array(`weights.${n}`);
  return weights as SaeWeights;
}

/** Frees every array of a start state now (see util/free-now). */
export function freeInit(init: EngineOptions['init']): void {
  freeNow(...Object.values(init.weights), init.sinceFired);
  if (init.adam) freeNow(...Object.values(init.adam.m), ...Object.values(init.adam.v));
}

/** The whole start state of `o`: zero Adam moments and counters where none were given (a fresh run). */
export function initialState(o: EngineOptions): EngineState {
  const zeros = () => mapParams((n) => new Float32Array(paramShape(n, o.cfg).reduce((a, b) => a * b, 1)));
  return {
    weights: o.init.weights,
    adam: o.init.adam ?? { m: zeros(), v: zeros(), steps: ADAM_GROUPS.map(() => 0) },
    sinceFired: o.init.sinceFired ?? new Float32Array(o.cfg.dSae),
  };
}
