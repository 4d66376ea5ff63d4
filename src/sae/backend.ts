/**
 * Compute-backend selection for the SAE trainer.
 *
 * `auto` tries, in order: @tensorflow/tfjs-node-gpu (only kept when it really sees a GPU),
 * @tensorflow/tfjs-node, the WebAssembly backend, then tfjs's plain-JS cpu backend.
 * tfjs-node(-gpu) are optional dependencies (libtensorflow is downloaded at install time), so
 * they are imported inside try/catch. Whatever loads, we use the tf namespace that the loaded
 * package exports, so ops run in the engine where its backend is registered.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type Tf = typeof import('@tensorflow/tfjs');
export type BackendName = 'auto' | 'tensorflow' | 'wasm' | 'cpu';

export interface SelectedBackend {
  tf: Tf;
  /** The tfjs backend in use: 'tensorflow' | 'wasm' | 'cpu'. */
  name: 'tensorflow' | 'wasm' | 'cpu';
  /** Human description of the device: "GPU (tfjs-node-gpu)", "CPU (wasm, 1 thread)", ... */
  device: string;
  /** Why other candidates were skipped (for the log). */
  skipped: string[];
}

let cached: SelectedBackend | undefined;

/** Selects (once per process) and initialises a backend; later calls must agree or get the same one. */
export async function selectBackend(wanted: BackendName, log: (m: string) => void = () => {}): Promise<SelectedBackend> {
  if (cached && (wanted === 'auto' || wanted === cached.name)) return cached;
  if (cached) {
    // tfjs has one engine per process; switching to another backend is fine for wasm/cpu.
    if (wanted === 'tensorflow') throw new Error(`backend 'tensorflow' requested after '${cached.name}' was initialised in this process`);
  }
  const skipped: string[] = [];
  const candidates: Array<'gpu' | 'node' | 'wasm' | 'cpu'> =
    wanted === 'auto' ? ['gpu', 'node', 'wasm', 'cpu'] : wanted === 'tensorflow' ? ['gpu', 'node'] : [wanted];
  for (const c of candidates) {
    try {
      const chosen = await tryCandidate(c, wanted === 'auto');
      if (chosen) {
        cached = { ...chosen, skipped };
        log(`backend: ${cached.name} on ${cached.device}${skipped.length ? ` (skipped: ${skipped.join('; ')})` : ''}`);
        return cached;
      }
      skipped.push(`${c}: no GPU visible`);
    } catch (e) {
      skipped.push(`${c}: ${firstLine(e)}`);
    }
  }
  throw new Error(`backend '${wanted}' is not available: ${skipped.join('; ')}` +
    (wanted === 'tensorflow' ? ' (install @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node; see README)' : ''));
}

async function tryCandidate(c: 'gpu' | 'node' | 'wasm' | 'cpu', requireGpu: boolean): Promise<Omit<SelectedBackend, 'skipped'> | null> {
  if (c === 'gpu' || c === 'node') {
    const pkg = c === 'gpu' ? '@tensorflow/tfjs-node-gpu' : '@tensorflow/tfjs-node';
    const tf = (await import(pkg)) as Tf;
    await tf.setBackend('tensorflow');
    await tf.ready();
    const binding = (tf.backend() as any).binding;
    const onGpu = Boolean(binding?.isUsingGpuDevice?.());
    // tfjs-node-gpu silently runs on the CPU when CUDA is missing; under `auto` we then prefer
    // trying the next candidate only if it is the GPU package (tfjs-node is the CPU build anyway).
    if (c === 'gpu' && requireGpu && !onGpu) return null;
    return { tf, name: 'tensorflow', device: onGpu ? `GPU (${pkg})` : `CPU (${pkg})` };
  }
  const tf = (await import('@tensorflow/tfjs')) as Tf;
  if (c === 'wasm') {
    const wasm = await import('@tensorflow/tfjs-backend-wasm');
    // In Node the .wasm binaries must be given as file paths of the package's dist folder.
    const require = createRequire(import.meta.url);
    const dist = dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
    wasm.setWasmPaths(join(dist, '/'));
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") failed');
    await tf.ready();
    return { tf, name: 'wasm', device: `CPU (wasm, ${wasm.getThreadsCount?.() ?? 1} thread)` };
  }
  if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") failed');
  await tf.ready();
  return { tf, name: 'cpu', device: 'CPU (plain JS)' };
}

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0];
}
