/**
 * Batch-assembly worker thread: reads the requested rows of a store (positional reads through
 * the page cache) and converts them to float32, off the main thread, so that the conversion of
 * the next batches overlaps the training step instead of adding to it.
 *
 * Protocol: {id, indices: Int32Array, scale} -> {id, batch: Float32Array (transferred)} | {id, error}.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { SMALL_STORE_BYTES, openStore } from './store.js';

export interface BatchRequest {
  id: number;
  indices: Int32Array;
  scale: number;
}

export type BatchReply = { id: number; batch: Float32Array } | { id: number; error: string };

const port = parentPort;
if (!port) throw new Error('loader worker: must run as a worker thread');
// Positional reads through the shared page cache, except for a small store: one read per row
// costs more than the step there.
const { dir, simd } = workerData as { dir: string; simd: boolean };
const store = openStore(dir, { maxInMemoryBytes: SMALL_STORE_BYTES, simd });

port.on('message', (req: BatchRequest) => {
  try {
    const raw = store.fetchSync(req.indices);
    const batch = new Float32Array(req.indices.length * store.d);
    store.decode(raw, batch, req.scale);
    port.postMessage({ id: req.id, batch } satisfies BatchReply, [batch.buffer]);
  } catch (e) {
    port.postMessage({ id: req.id, error: (e as Error).message } satisfies BatchReply);
  }
});
