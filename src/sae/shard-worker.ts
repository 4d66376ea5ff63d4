/**
 * worker_threads entry: one SaeShard on its own tfjs backend instance (own wasm module, so
 * its own core). Requests {id, op, ...} -> replies {id, result} or {id, error}.
 */
import { parentPort } from 'node:worker_threads';
import { selectBackend } from './backend.js';
import { SaeShard } from './shard.js';

let shard: SaeShard | null = null;

async function handle(msg: any): Promise<unknown> {
  switch (msg.op) {
    case 'init': {
      const { tf } = await selectBackend(msg.backend);
      shard = new SaeShard(tf, msg.init, msg.init);
      return null;
    }
    case 'forward': return shard!.forward(msg.x, msg.B, msg.bDec, msg.keep);
    case 'backward': return shard!.backward(msg.g, msg.B, msg.lambda, msg.lr, msg.steps);
    case 'dead': return shard!.deadCount(msg.window);
    case 'state': return shard!.state();
    case 'close': shard?.dispose(); shard = null; return null;
    default: throw new Error(`shard worker: unknown op ${msg.op}`);
  }
}

parentPort!.on('message', async (msg) => {
  try {
    parentPort!.postMessage({ id: msg.id, result: await handle(msg) });
  } catch (e) {
    parentPort!.postMessage({ id: msg.id, error: String((e as Error)?.stack ?? e) });
  }
});
