/**
 * The training loader: batches of float32 rows from an activation store.
 *
 * Rows of a split are delivered as one endless stream: the concatenation of a permutation
 * of the split per epoch (Fisher-Yates, seeded by (seed, epoch)), or of 0..n-1 in order with
 * `shuffle: false`. A batch that crosses an epoch boundary takes the last rows of one epoch
 * and the first rows of the next, so every row is seen exactly once per epoch and the state
 * is just a cursor {epoch, position} into that stream: restoring it continues exactly.
 *
 * Prefetch: `prefetch` batches are planned and requested ahead of the one being returned.
 * With `workers` >= 1 (the default) a worker thread reads the rows and converts them to float32,
 * so the whole assembly of the next batches overlaps the caller's training step; with
 * `workers: 0` the reads still go to libuv's thread pool but the conversion runs on the main
 * thread. Neither changes what is delivered, only when and where the work is done.
 */
import { availableParallelism } from 'node:os';
import { SMALL_STORE_BYTES, type ActivationStore } from './loader/store.js';
import { BatchWorkerPool } from './loader/pool.js';
import { Rng, permutation } from './loader/rng.js';
import { DEFAULT_EVAL_ROWS } from './store-format.js';

export { ActivationStore, openStore } from './loader/store.js';
export type { OpenStoreOptions, StoreHeader, StoreDtype } from './loader/store.js';

/** Batch-assembly threads: two keep up with ~100k rows/s of d=2048; leave a core for training. */
export const DEFAULT_WORKERS = Math.max(1, Math.min(2, availableParallelism() - 1));

/**
 * Batches of at most this many values from a small store are assembled on the calling thread:
 * converting the demo's 64 x 64 batch takes microseconds, while a worker costs a message round
 * trip per batch and, per loader, a thread start with its own module loading and store copy
 * (measured: a 1,000-step demo run's process spent about half of its 1.6 s profiled span waiting on its worker).
 */
export const SMALL_BATCH_VALUES = 1 << 16;

/** Where batches are converted to float32: worker threads, or the thread calling next(). */
export type Assembly = 'worker' | 'caller';

export type Split = 'train' | 'eval' | 'all';

export interface LoaderOptions {
  batchSize: number;
  /** Seed of the epoch permutations. Default 0. */
  seed?: number;
  /** false: rows in store order. Default true. */
  shuffle?: boolean;
  /** Every value is multiplied by this (1 / norm factor). Default 1. */
  scale?: number;
  /** 'train': all rows but the last `evalRows`; 'eval': the last `evalRows`; 'all': every row. Default 'train'. */
  split?: Split;
  /** Size of the held-out split at the end of the store. Default DEFAULT_EVAL_ROWS. */
  evalRows?: number;
  /** Batches requested ahead of the one returned. Default 2. */
  prefetch?: number;
  /**
   * Worker threads assembling batches (0: on the main thread). Default: none for small batches of a
   * small store (SMALL_BATCH_VALUES, SMALL_STORE_BYTES), else cores - 1, between 1 and 2.
   */
  workers?: number;
}

/** A checkpointable cursor: the next row to deliver is `position` in epoch `epoch`'s order. */
export interface LoaderState {
  epoch: number;
  position: number;
  seed: number;
  /** Split size and order, checked on restore so that a state is not applied to another split. */
  rows: number;
  shuffle: boolean;
}

interface Cursor {
  epoch: number;
  position: number;
}

export class BatchLoader {
  readonly batchSize: number;
  readonly d: number;
  /** Rows in this loader's split, and the store row where the split starts. */
  readonly rows: number;
  readonly firstRow: number;
  readonly shuffle: boolean;
  readonly scale: number;
  private seed: number;
  private readonly prefetch: number;
  /** Next row to deliver (advanced by next()) and next row to plan (advanced by prefetching). */
  private delivered: Cursor = { epoch: 0, position: 0 };
  private planned: Cursor = { epoch: 0, position: 0 };
  private queue: Array<Promise<Float32Array>> = [];
  private readonly workers: number;
  private pool?: BatchWorkerPool;
  private permutations = new Map<number, Int32Array>();
  private closed = false;

  constructor(
    readonly store: ActivationStore,
    options: LoaderOptions,
  ) {
    this.batchSize = positiveInt(options.batchSize, 'batchSize');
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed)) throw new Error(`loader: seed must be an integer, got ${options.seed}`);
    this.shuffle = options.shuffle ?? true;
    this.scale = options.scale ?? 1;
    if (!Number.isFinite(this.scale)) throw new Error(`loader: scale must be a finite number, got ${options.scale}`);
    this.prefetch = Math.max(0, Math.floor(options.prefetch ?? 2));
    this.d = store.d;
    this.workers = Math.max(0, Math.floor(options.workers ?? defaultWorkers(store, this.batchSize)));
    const evalRows = options.evalRows ?? DEFAULT_EVAL_ROWS;
    const split = options.split ?? 'train';
    ({ firstRow: this.firstRow, rows: this.rows } = splitRange(store, split, evalRows));
  }

  get assembly(): Assembly {
    return this.workers > 0 ? 'worker' : 'caller';
  }

  /** The next batch: batchSize * d float32 values, row-major, freshly allocated. */
  async next(): Promise<Float32Array> {
    if (this.closed) throw new Error('loader: next() after close()');
    while (this.queue.length < this.prefetch + 1) this.queue.push(this.request(this.planBatch()));
    const batch = await this.queue.shift()!;
    this.delivered = advance(this.delivered, this.batchSize, this.rows);
    return batch;
  }

  state(): LoaderState {
    return { ...this.delivered, seed: this.seed, rows: this.rows, shuffle: this.shuffle };
  }

  /** Continues exactly where `state` was taken; reads already prefetched are discarded. */
  restore(state: LoaderState): void {
    if (state.rows !== undefined && state.rows !== this.rows) {
      throw new Error(
        `loader.restore: state is for a split of ${state.rows} rows, this loader's split has ${this.rows}`,
      );
    }
    if (state.shuffle !== undefined && state.shuffle !== this.shuffle) {
      throw new Error(`loader.restore: state has shuffle=${state.shuffle}, this loader shuffle=${this.shuffle}`);
    }
    if (
      !Number.isSafeInteger(state.epoch) ||
      state.epoch < 0 ||
      !Number.isSafeInteger(state.position) ||
      state.position < 0 ||
      state.position > this.rows
    ) {
      throw new Error(
        `loader.restore: bad cursor epoch=${state.epoch} position=${state.position} (split has ${this.rows} rows)`,
      );
    }
    if (state.seed !== this.seed) this.permutations.clear();
    this.seed = state.seed;
    this.delivered = { epoch: state.epoch, position: state.position };
    this.planned = { ...this.delivered };
    this.dropQueue();
  }

  close(): void {
    this.closed = true;
    this.dropQueue();
    this.pool?.close();
    this.pool = undefined;
    this.permutations.clear();
  }

  /** One batch's rows as float32: in a worker thread, or read async and converted here. */
  private request(indices: Int32Array): Promise<Float32Array> {
    if (this.workers > 0) {
      this.pool ??= new BatchWorkerPool(this.store.dir, this.workers, this.store.simd);
      return this.pool.request(indices, this.scale);
    }
    return this.store.fetch(indices).then((raw) => {
      const out = new Float32Array(this.batchSize * this.d);
      this.store.decode(raw, out, this.scale);
      return out;
    });
  }

  /** Forgets requested batches; their late results or errors are ignored. */
  private dropQueue(): void {
    for (const p of this.queue) p.catch(() => {});
    this.queue = [];
  }

  /** Indices of the next batch to read, advancing the planning cursor. */
  private planBatch(): Int32Array {
    const indices = this.indicesFrom(this.planned);
    this.planned = advance(this.planned, this.batchSize, this.rows);
    return indices;
  }

  private indicesFrom(cursor: Cursor): Int32Array {
    const indices = new Int32Array(this.batchSize);
    let { epoch, position } = cursor;
    for (let k = 0; k < this.batchSize; k++) {
      if (position === this.rows) {
        epoch++;
        position = 0;
      }
      indices[k] = this.firstRow + (this.shuffle ? this.order(epoch)[position] : position);
      position++;
    }
    return indices;
  }

  /** The permutation of one epoch; only the last two are kept (a batch spans at most two). */
  private order(epoch: number): Int32Array {
    let p = this.permutations.get(epoch);
    if (!p) {
      p = permutation(this.rows, new Rng(this.seed, epoch + 1));
      this.permutations.set(epoch, p);
      for (const e of this.permutations.keys()) if (e < epoch - 1 || e > epoch + 1) this.permutations.delete(e);
    }
    return p;
  }
}

function defaultWorkers(store: ActivationStore, batchSize: number): number {
  const small = store.rows * store.bytesPerRow <= SMALL_STORE_BYTES && batchSize * store.d <= SMALL_BATCH_VALUES;
  return small ? 0 : DEFAULT_WORKERS;
}

/** The row range of a split; a clear error when the store is too small for it. */
export function splitRange(store: ActivationStore, split: Split, evalRows: number): { firstRow: number; rows: number } {
  if (!Number.isSafeInteger(evalRows) || evalRows < 0)
    throw new Error(`loader: evalRows must be a non-negative integer, got ${evalRows}`);
  if (split === 'all') return nonEmpty({ firstRow: 0, rows: store.rows }, store, split, evalRows);
  if (evalRows >= store.rows && split === 'train') {
    throw new Error(
      `store ${store.dir} has ${store.rows} rows: evalRows=${evalRows} leaves no training rows (pass a smaller evalRows)`,
    );
  }
  if (split === 'eval') {
    if (evalRows > store.rows)
      throw new Error(`store ${store.dir} has ${store.rows} rows, fewer than evalRows=${evalRows}`);
    return nonEmpty({ firstRow: store.rows - evalRows, rows: evalRows }, store, split, evalRows);
  }
  if (split === 'train') return { firstRow: 0, rows: store.rows - evalRows };
  throw new Error(`loader: split must be 'train', 'eval' or 'all', got ${JSON.stringify(split)}`);
}

function nonEmpty(range: { firstRow: number; rows: number }, store: ActivationStore, split: Split, evalRows: number) {
  if (range.rows === 0)
    throw new Error(`store ${store.dir}: split '${split}' is empty (rows=${store.rows}, evalRows=${evalRows})`);
  return range;
}

/** The cursor n rows further along the stream of epochs (position normalised to [0, rows)). */
function advance(c: Cursor, n: number, rows: number): Cursor {
  const total = c.position + n;
  return { epoch: c.epoch + Math.floor(total / rows), position: total % rows };
}

function positiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`loader: ${name} must be a positive integer, got ${v}`);
  return v;
}
