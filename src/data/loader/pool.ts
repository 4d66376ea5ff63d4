/**
 * A few batch-assembly workers (see worker.ts) behind one `request(indices, scale)` call.
 * Requests go round-robin; each reply settles its own promise, so order is kept by the caller
 * awaiting promises in order. The threads hold the process open only while requests are
 * pending, so a loader that is never closed does not keep a finished program alive.
 */
import { Worker } from 'node:worker_threads';
import type { BatchReply } from './worker.js';

interface Pending {
  resolve(batch: Float32Array): void;
  reject(err: Error): void;
  worker: Worker;
}

export class BatchWorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly inFlight = new Map<Worker, number>();
  private nextId = 0;
  private turn = 0;

  constructor(
    private readonly dir: string,
    size: number,
    private readonly simd = true,
  ) {
    for (let i = 0; i < size; i++) this.workers.push(this.start());
  }

  request(indices: Int32Array, scale: number): Promise<Float32Array> {
    const worker = this.workers[this.turn++ % this.workers.length];
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, worker });
      this.setInFlight(worker, +1);
      worker.postMessage({ id, indices, scale });
    });
  }

  /** Stops the threads; requests still pending are rejected. */
  close(): void {
    for (const [id, p] of this.pending) {
      this.pending.delete(id);
      p.reject(new Error('loader closed'));
    }
    for (const w of this.workers) void w.terminate();
    this.workers.length = 0;
  }

  private start(): Worker {
    const worker = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { dir: this.dir, simd: this.simd },
    });
    worker.unref();
    this.inFlight.set(worker, 0);
    worker.on('message', (reply: BatchReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      this.setInFlight(worker, -1);
      if ('error' in reply) p.reject(new Error(reply.error));
      else p.resolve(reply.batch);
    });
    worker.on('error', (err) => this.failAll(worker, err));
    worker.on('exit', (code) => {
      if (this.workers.includes(worker)) this.failAll(worker, new Error(`loader worker exited with code ${code}`));
    });
    return worker;
  }

  private failAll(worker: Worker, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(id);
      this.setInFlight(worker, -1);
      p.reject(err);
    }
  }

  /** ref() while a worker has work pending (the caller awaits it), unref() when idle. */
  private setInFlight(worker: Worker, delta: number): void {
    const n = (this.inFlight.get(worker) ?? 0) + delta;
    this.inFlight.set(worker, n);
    if (n === 1 && delta > 0) worker.ref();
    if (n === 0) worker.unref();
  }
}
