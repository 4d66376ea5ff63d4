/**
 * Frees large typed arrays now instead of at the next garbage collection. A model-sized array
 * that became garbage (the initial weights once the engine has its copy, a checkpoint's array
 * once written) may otherwise stay resident long enough to add hundreds of MB to a training's
 * peak memory. Uses the native CPU addon's detach (napi_detach_arraybuffer); where the addon is
 * not built this does nothing and the collector frees the arrays later.
 *
 * Only an array that is the sole view of its whole buffer is freed (a view into a file's buffer
 * would take the rest of the file with it), and only large ones (small buffers are pooled).
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const MIN_BYTES = 1 << 20;

type Detach = (a: ArrayBufferView) => boolean;
let detach: Detach | null | undefined;

function nativeDetach(): Detach | null {
  if (detach !== undefined) return detach;
  const loader = createRequire(import.meta.url)(fileURLToPath(new URL('../../../native/index.cjs', import.meta.url)));
  const { addon } = loader.loadNativeAddon() as { addon: { detach?: Detach } | null };
  detach = addon?.detach ?? null;
  return detach;
}

export function freeNow(...arrays: (ArrayBufferView | undefined)[]): void {
  for (const a of arrays) {
    if (!a || a.byteLength < MIN_BYTES || a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) continue;
    nativeDetach()?.(a);
  }
}
