/**
 * The CUDA engine: the fused step of native/cuda (CUDA kernels + cuBLAS, the state resident in
 * device memory between steps) behind SaeEngine, through the same `Sae` class as the native CPU
 * addon (NativeEngine). The addon is built by scripts/build-cuda.mjs where nvcc is installed; it
 * loads on a machine without a GPU and then reports why it cannot run ("no CUDA device (...)").
 *
 * The device is the first one the process sees: the runner hands a train-sae instance its GPU
 * slot as CUDA_VISIBLE_DEVICES (src/runtime/resources.ts), which the CUDA runtime honours; the
 * slot is recorded in the device description.
 *
 * SAE_CUDA_ADDON=<path> loads another build of the addon: the tests point it at the emulation
 * build (the kernels compiled as host C++), which reports itself as emulated and which
 * `backend: auto` never picks.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { freeInit, type EngineOptions, type SaeEngine } from '../engine.js';
import { NativeEngine, type NativeSae } from './native.js';

/** The device build (scripts/build-cuda.mjs), seen from dist/src/sae/engines/. */
export const CUDA_ADDON = fileURLToPath(new URL('../../../../native/build/cuda/sae_cuda.node', import.meta.url));
/** The emulation build: the same kernels as host C++, for tests on machines without a GPU. */
export const CUDA_EMULATED_ADDON = fileURLToPath(
  new URL('../../../../native/build/cuda-emulated/sae_cuda_emulated.node', import.meta.url),
);

export interface CudaInfo {
  emulated: boolean;
  /** Why no step can run here (e.g. "no CUDA device (...)"); null when a device answers. */
  error: string | null;
  device?: string;
  blas?: string;
  blasError?: string | null;
  freeBytes?: number;
}

interface CudaAddon {
  info(): CudaInfo;
  estimateBytes(dIn: number, dSae: number, rows: number): number;
  sgemmBench(m: number, n: number, k: number, reps: number, allowTf32?: boolean): number;
  Sae: new (o: {
    dIn: number;
    dSae: number;
    applyBDecToInput: boolean;
    bandwidth: number;
    allowTf32?: boolean;
  }) => NativeSae;
}

const loaded = new Map<string, { addon: CudaAddon | null; error: string | null }>();

/** The addon at $SAE_CUDA_ADDON or the device build, loaded once per path; or why it does not load. */
export function loadCudaAddon(): { addon: CudaAddon | null; error: string | null; path: string } {
  const path = process.env.SAE_CUDA_ADDON || CUDA_ADDON;
  if (!loaded.has(path)) {
    if (!existsSync(path)) loaded.set(path, { addon: null, error: `the CUDA addon is not built (${path} is missing)` });
    else {
      try {
        loaded.set(path, { addon: createRequire(import.meta.url)(path) as CudaAddon, error: null });
      } catch (e) {
        loaded.set(path, {
          addon: null,
          error: `the CUDA addon does not load (${String((e as Error)?.message ?? e).split('\n')[0]})`,
        });
      }
    }
  }
  return { ...loaded.get(path)!, path };
}

/** "NVIDIA H200 (sm_90, ...), cuBLAS 13.1.0 (libcublas.so.13), CUDA_VISIBLE_DEVICES=1". */
export function describeCuda(info: CudaInfo): string {
  const slot = process.env.CUDA_VISIBLE_DEVICES;
  return [info.device, info.blas, slot !== undefined && !info.emulated ? `CUDA_VISIBLE_DEVICES=${slot}` : null]
    .filter(Boolean)
    .join(', ');
}

export async function cudaStatus(): Promise<{
  available: boolean;
  reason?: string;
  device?: string;
  emulated?: boolean;
}> {
  const { addon, error } = loadCudaAddon();
  if (!addon) return { available: false, reason: error ?? 'the CUDA addon did not load' };
  const info = addon.info();
  if (info.error) return { available: false, reason: info.error };
  return { available: true, device: describeCuda(info), emulated: info.emulated };
}

export async function createCudaEngine(o: EngineOptions): Promise<SaeEngine> {
  const { addon, error } = loadCudaAddon();
  if (!addon) throw new Error(error ?? 'the CUDA addon did not load');
  const info = addon.info();
  if (info.error) throw new Error(info.error);
  const { dIn, dSae, applyBDecToInput, bandwidth } = o.cfg;
  checkDeviceMemory(addon, info, dIn, dSae, o.batchSize ?? 1);
  const sae = new addon.Sae({ dIn, dSae, applyBDecToInput, bandwidth, allowTf32: o.allowTf32 ?? false });
  try {
    sae.setState(o.init); // the addon zeroes Adam moments and counters on the device
    if (o.initDisposable) freeInit(o.init);
  } catch (e) {
    sae.dispose();
    throw e;
  }
  return new NativeEngine(sae, dSae, { name: 'cuda', device: describeCuda(info), threads: 1 });
}

/** A clear error before anything is allocated when the device's free memory is short of the estimate. */
function checkDeviceMemory(addon: CudaAddon, info: CudaInfo, dIn: number, dSae: number, rows: number): void {
  const need = addon.estimateBytes(dIn, dSae, rows);
  if (!info.emulated && info.freeBytes !== undefined && need > info.freeBytes) {
    const gib = (b: number) => (b / 2 ** 30).toFixed(2);
    throw new Error(
      `train-sae: d_sae=${dSae}, d_in=${dIn}, batch_size=${rows} on cuda needs about ${gib(need)} GiB of device memory ` +
        `(weights, Adam moments, batch scratch), more than the ${gib(info.freeBytes)} GiB free on ` +
        `${info.device}; use a smaller d_sae or batch_size`,
    );
  }
}
