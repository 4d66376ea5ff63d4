/** worker_threads entry of one feature shard (tfjs-parallel.ts), on its own tfjs backend instance (own wasm module, own core). */
import { parentPort } from 'node:worker_threads';
import { shardWorkerHandler } from './tfjs-parallel.js';

const handle = shardWorkerHandler();
parentPort!.on('message', async (msg) => {
  try {
    parentPort!.postMessage({ id: msg.id, result: await handle(msg) });
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: String((e as Error)?.stack ?? e) });
  }
});
