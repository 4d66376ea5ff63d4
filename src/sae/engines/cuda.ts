/**
 * Placeholder for the CUDA engine (native/cuda, helper "engine-cuda"): reports itself
 * unavailable so that the backend ladder compiles and falls through. Replaced by the real
 * adapter when it lands; these two exports are its contract.
 */
import type { EngineOptions, SaeEngine } from '../engine.js';

export async function cudaStatus(): Promise<{ available: boolean; reason?: string; device?: string }> {
  return { available: false, reason: 'CUDA engine not built' };
}

export async function createCudaEngine(_o: EngineOptions): Promise<SaeEngine> {
  throw new Error('CUDA engine not built');
}
