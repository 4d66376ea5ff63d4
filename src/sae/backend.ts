/**
 * Choosing the engine that trains an SAE. `backend: auto` walks the ladder of ENGINE_NAMES:
 * cuda (the CUDA addon on a visible GPU), tensorflow (tfjs-node-gpu, only when it really sees
 * a GPU), native (the OpenBLAS addon), wasm, cpu; the first available one runs, and the log
 * says once which one and why the faster ones were skipped. An engine asked for by name that
 * cannot run is an error naming what is missing and how to get it. The choice comes before the
 * engine allocates anything, so that the trainer checks its memory estimate first.
 */
import { availableParallelism } from 'node:os';
import { ENGINE_NAMES, type BackendChoice, type EngineName, type EngineOptions, type SaeEngine } from './engine.js';
import { ENABLE_NATIVE } from './engines/native.js';

type Availability =
  | { available: true; create(o: EngineOptions): Promise<SaeEngine> }
  | { available: false; reason: string };

/** How to get each engine, for the messages of an engine that cannot run. */
const HOW_TO_GET: Record<EngineName, string> = {
  cuda:
    'it needs an NVIDIA GPU with its driver (libcuda.so.1; for speed cuBLAS, libcublas.so.13 or .12, ' +
    'or SAE_CUBLAS=<path>) and the CUDA addon (`npm run build:cuda` where nvcc is installed; README: GPU)',
  tensorflow:
    'it needs @tensorflow/tfjs-node-gpu (npm install; it downloads libtensorflow 2.9.1, which wants CUDA 11.2 and cuDNN 8.1)',
  native: `build it with: ${ENABLE_NATIVE}`,
  wasm: 'reinstall the dependencies (npm ci): @tensorflow/tfjs-backend-wasm is one',
  cpu: 'reinstall the dependencies (npm ci): @tensorflow/tfjs is one',
};

async function availability(name: EngineName, underAuto: boolean): Promise<Availability> {
  try {
    switch (name) {
      case 'cuda': {
        const { cudaStatus, createCudaEngine } = await import('./engines/cuda.js');
        const s = await cudaStatus();
        // The emulation build (tests) runs only when asked for by name: it is not a GPU.
        if (s.available && s.emulated && underAuto)
          return { available: false, reason: 'the loaded CUDA addon is the CPU emulation build' };
        return s.available
          ? { available: true, create: createCudaEngine }
          : { available: false, reason: s.reason ?? 'unavailable' };
      }
      case 'native': {
        const { nativeStatus, createNativeEngine } = await import('./engines/native.js');
        const s = await nativeStatus();
        return s.available
          ? { available: true, create: createNativeEngine }
          : { available: false, reason: s.reason ?? 'unavailable' };
      }
      default: {
        const { loadTf, createTfjsEngine } = await import('./engines/tfjs.js');
        const { onGpu } = await loadTf(name);
        // tfjs-node on the CPU is slower than the native engine: under auto it only counts on a GPU.
        if (name === 'tensorflow' && underAuto && !onGpu) return { available: false, reason: 'tfjs-node sees no GPU' };
        return { available: true, create: (o) => createTfjsEngine(name, o) };
      }
    }
  } catch (e) {
    return { available: false, reason: String((e as Error)?.message ?? e).split('\n')[0] };
  }
}

/** The threads an engine runs with when `asked` (undefined: its default: native all cores, tfjs 1 = in process). */
export function threadsFor(name: EngineName, asked: number | undefined): number {
  if (name === 'cuda') return 1;
  if (name === 'native') return asked ?? availableParallelism();
  return asked ?? 1;
}

/** The engine that will run, before it allocates anything (so that the memory check can come first). */
export interface EngineChoice {
  name: EngineName;
  threads: number;
  create(o: Omit<EngineOptions, 'threads'>): Promise<SaeEngine>;
  /** Why this engine, for the log line: "(auto; skipped cuda: ...)" and how to enable a skipped native engine. */
  why: string;
}

/** The engine `backend` asks for (auto: the first available on the ladder), with its threads. */
export async function chooseEngine(backend: BackendChoice, threads: number | undefined): Promise<EngineChoice> {
  const underAuto = backend === 'auto';
  const skipped: string[] = [];
  for (const name of underAuto ? ENGINE_NAMES : [backend]) {
    const a = await availability(name, underAuto);
    if (a.available) {
      const n = threadsFor(name, threads);
      const why = underAuto ? ` (auto${skipped.length ? `; skipped ${skipped.join('; ')}` : ''})` : '';
      const hint =
        underAuto && skipped.some((s) => s.startsWith('native:')) ? `\nfor the fast CPU engine: ${ENABLE_NATIVE}` : '';
      return { name, threads: n, create: (o) => a.create({ ...o, threads: n }), why: why + hint };
    }
    if (!underAuto) throw new Error(`train-sae: backend '${name}' cannot run here (${a.reason}); ${HOW_TO_GET[name]}`);
    skipped.push(`${name}: ${a.reason}`);
  }
  throw new Error(`train-sae: no engine can run here: ${skipped.join('; ')}`);
}
