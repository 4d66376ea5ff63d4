/**
 * The native CPU engine: the fused step of native/cpu (C++ over OpenBLAS + OpenMP; its
 * JS-facing API is the `Sae` class of the addon contract) behind SaeEngine. The weights stay
 * in the addon between steps; only batches go in and statistics come out.
 *
 * The addon is built by `npm run build:native` where a compiler and Debian's OpenBLAS are
 * present, and loaded through native/index.cjs (which picks the BLAS kernels for this CPU and
 * sets the OpenMP policy before the library loads). Where it is missing, `backend: auto`
 * falls back to tfjs and says so once; `backend: native` is an error naming what is missing.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import {
  freeInit,
  type EngineInfo,
  type EngineOptions,
  type EngineState,
  type EvalStats,
  type SaeEngine,
  type StatePath,
  type StateReader,
} from '../engine.js';
import type { StepStats } from '../jumprelu.js';

/** The repository's native/index.cjs (seen from dist/src/sae/engines/): loads the addon after setting its environment. */
const loader = createRequire(import.meta.url)(
  fileURLToPath(new URL('../../../../native/index.cjs', import.meta.url)),
) as {
  loadNativeAddon(): { addon: NativeAddon | null; error: string | null };
  ENABLE_COMMAND: string;
};

/** The command that builds the fast CPU path (README: training engines). */
export const ENABLE_NATIVE = loader.ENABLE_COMMAND;

/** The addons' common `Sae` class (native/cpu/addon.cc; native/cuda/addon.cc mirrors it). */
export interface NativeSae {
  /** Adam moments and counters may be left out: a fresh start (the addon zeroes them). */
  setState(s: EngineOptions['init']): void;
  getState(): EngineState;
  /** The CPU addon also reads a range [offset, offset + count) in whole rows. */
  getArray(path: StatePath, offset?: number, count?: number): Float32Array;
  /** CPU addon only: frees the Adam moments and step scratch after the last step. */
  endTraining?(): void;
  getSteps(): number[];
  step(x: Float32Array, rows: number, lambda: number, lr: number): Float64Array;
  evaluate(x: Float32Array, rows: number, fired: Float32Array): Float64Array;
  deadFraction(windowSamples: number): number;
  dispose(): void;
}

interface NativeAddon {
  info(): Record<string, string | number>;
  Sae: new (o: {
    dIn: number;
    dSae: number;
    applyBDecToInput: boolean;
    bandwidth: number;
    threads: number;
  }) => NativeSae;
}

let loading: Promise<NativeAddon> | undefined;

/** The addon, loaded once per process; rejects with what is missing. */
function loadAddon(): Promise<NativeAddon> {
  loading ??= (async () => {
    const { addon, error } = loader.loadNativeAddon();
    // The ladder adds how to build it (ENABLE_NATIVE) where it matters.
    if (!addon) throw new Error((error ?? 'the native addon did not load').replace(/; to (re)?build it: .*$/, ''));
    return addon;
  })();
  return loading;
}

export async function nativeStatus(): Promise<{ available: boolean; reason?: string; device?: string }> {
  try {
    return { available: true, device: describe((await loadAddon()).info()) };
  } catch (e) {
    return { available: false, reason: String((e as Error)?.message ?? e).split('\n')[0] };
  }
}

/** "CPU (OpenBLAS 0.3.21 SkylakeX)": the library and the kernels it runs. */
function describe(info: Record<string, string | number>): string {
  return `CPU (${[info.blas, info.coretype].filter(Boolean).join(' ') || 'BLAS'})`;
}

export async function createNativeEngine(o: EngineOptions): Promise<SaeEngine> {
  const addon = await loadAddon();
  const { dIn, dSae, applyBDecToInput, bandwidth } = o.cfg;
  const sae = new addon.Sae({ dIn, dSae, applyBDecToInput, bandwidth, threads: o.threads });
  sae.setState(o.init); // zero Adam moments and counters are made by the addon, not allocated in JS
  if (o.initDisposable) freeInit(o.init);
  return new NativeEngine(sae, dSae, { name: 'native', device: describe(addon.info()), threads: o.threads }, true);
}

/** SaeEngine over an addon's `Sae`: the CPU engine here, the CUDA engine (engines/cuda.ts) too. */
export class NativeEngine implements SaeEngine {
  constructor(
    private readonly sae: NativeSae,
    private readonly dSae: number,
    readonly info: EngineInfo,
    /** Whether the addon reads ranges of an array (the CPU addon; the CUDA addon copies whole arrays). */
    private readonly rangeReads = false,
  ) {}

  trainStep(x: Float32Array, rows: number, lambda: number, lr: number): StepStats {
    const [rec, l0, totalVar] = this.sae.step(x, rows, lambda, lr);
    return { rec, l0, totalVar };
  }

  evaluate(x: Float32Array, rows: number): EvalStats {
    const fired = new Float32Array(this.dSae);
    const [sqErr, active] = this.sae.evaluate(x, rows, fired);
    return { sqErr, active, fired };
  }

  deadFraction(windowSamples: number): number {
    return this.sae.deadFraction(windowSamples);
  }

  snapshot(): EngineState {
    return this.sae.getState();
  }

  readState(): StateReader {
    const reader: StateReader = { adamSteps: this.sae.getSteps(), array: (path) => this.sae.getArray(path) };
    if (this.rangeReads) reader.range = (path, offset, count) => this.sae.getArray(path, offset, count);
    return reader;
  }

  endTraining(): void {
    this.sae.endTraining?.();
  }

  restore(state: EngineState): void {
    this.sae.setState(state);
  }

  dispose(): void {
    this.sae.dispose();
  }
}
