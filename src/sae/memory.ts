/**
 * How much memory a training run needs, per engine, checked before training starts so that a
 * shape too large fails with a clear message instead of an "Aborted()" of the wasm heap or the
 * kernel's OOM killer an hour in. The coefficients are fitted to measured peaks
 * (test/sae/memory.test.ts trains a few steps in a child process and compares its peak RSS
 * with these estimates).
 */
import { totalmem } from 'node:os';
import type { EngineName } from './engine.js';

export interface RunShape {
  dIn: number;
  dSae: number;
  batch: number;
  /** Threads (native) or worker threads, each holding a slice of the features (wasm/cpu). */
  threads: number;
}

/** wasm32 addresses at most 4 GiB, and tfjs-backend-wasm aborts the process when its heap would pass it. */
export const WASM_HEAP_BYTES = 4 * 2 ** 30;

/**
 * Live float32 values at the peak of one step, per engine: a * d_in d_sae (weights, Adam
 * moments, gradients and the step's matrix temporaries) + b * B d_sae (activations) +
 * c * B d_in (batch, reconstruction, error).
 *   tfjs: every intermediate of the step stays alive until the step's tf.tidy ends.
 *   native: weights + 2 moments + gradients, activations reused between steps.
 */
const FLOATS: Record<EngineName, { a: number; b: number; c: number }> = {
  tensorflow: { a: 26, b: 16, c: 8 },
  wasm: { a: 26, b: 16, c: 8 },
  cpu: { a: 26, b: 16, c: 8 },
  native: { a: 8, b: 4, c: 4 },
  // Device memory is the GPU's; on the host the engine holds a copy of the state at most.
  cuda: { a: 6, b: 0, c: 2 },
};

/** Estimated bytes: the whole run, and the largest single heap (a wasm worker's shard), where one is bounded. */
export function estimateTrainingBytes(engine: EngineName, s: RunShape): { total: number; perHeap: number | null } {
  const { a, b, c } = FLOATS[engine];
  const bytes = (dSae: number) => 4 * (a * s.dIn * dSae + b * s.batch * dSae + c * s.batch * s.dIn);
  const shards = engine === 'wasm' || engine === 'cpu' ? s.threads : 1;
  const perShard = bytes(Math.ceil(s.dSae / shards));
  return { total: shards * perShard, perHeap: engine === 'wasm' ? perShard : null };
}

/** The run's memory limit: max_memory_gb if given, else 80% of the machine's memory. */
export function memoryLimit(maxMemoryBytes?: number): number {
  return maxMemoryBytes ?? 0.8 * totalmem();
}

/** Throws a clear error when a run of this shape on `engine` is estimated not to fit. */
export function checkMemory(engine: EngineName, s: RunShape, maxMemoryBytes?: number): void {
  const need = estimateTrainingBytes(engine, s);
  const limit = memoryLimit(maxMemoryBytes);
  const shape = `d_sae=${s.dSae}, d_in=${s.dIn}, batch_size=${s.batch}`;
  if (need.total > limit) {
    throw new Error(
      `train-sae: ${shape} on ${engine} needs about ${gib(need.total)} GiB (weights, Adam moments, step temporaries), ` +
        `more than the limit of ${gib(limit)} GiB (${maxMemoryBytes === undefined ? "80% of this machine's memory" : 'max_memory_gb'}); ` +
        `use a smaller d_sae or batch_size`,
    );
  }
  if (need.perHeap !== null && need.perHeap > WASM_HEAP_BYTES) {
    const threads = Math.ceil(need.perHeap / WASM_HEAP_BYTES) * s.threads;
    throw new Error(
      `train-sae: ${shape} on wasm needs about ${gib(need.perHeap)} GiB per worker heap with threads: ${s.threads}, ` +
        `more than wasm's 4 GiB; use threads: ${threads} or more (each worker holds a slice of the features), ` +
        `a smaller d_sae or batch_size, or the native engine`,
    );
  }
}

function gib(bytes: number): string {
  return (bytes / 2 ** 30).toFixed(2);
}
