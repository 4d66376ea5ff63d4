/**
 * The seed's input normalisation: the mean L2 norm of activation rows, estimated over
 * `batches` random batches of `batchSize` rows from the training split. The trainer divides
 * every input by it (the seed measured 3.4179 and divided by 3.4).
 */
import { BatchLoader, type ActivationStore } from './loader.js';

export interface NormOptions {
  batches: number;
  batchSize: number;
  seed: number;
  /** Held-out rows at the end of the store, excluded from the estimate (0: use every row). */
  evalRows: number;
  onBatch?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface NormEstimate {
  /** Mean over sampled rows of ||x||_2. */
  meanNorm: number;
  /** Mean over sampled rows of ||x||_2^2. */
  meanSqNorm: number;
  /** The factor inputs are divided by: the mean norm. */
  scale: number;
  rowsSampled: number;
}

export async function estimateNorm(store: ActivationStore, opts: NormOptions): Promise<NormEstimate> {
  const loader = new BatchLoader(store, {
    batchSize: opts.batchSize,
    seed: opts.seed,
    shuffle: true,
    split: 'train',
    evalRows: opts.evalRows,
  });
  const d = store.d;
  let sumNorm = 0;
  let sumSq = 0;
  try {
    for (let b = 0; b < opts.batches; b++) {
      opts.signal?.throwIfAborted();
      const batch = await loader.next();
      for (let r = 0; r < opts.batchSize; r++) {
        let sq = 0;
        for (let i = r * d, end = i + d; i < end; i++) sq += batch[i] * batch[i];
        sumSq += sq;
        sumNorm += Math.sqrt(sq);
      }
      opts.onBatch?.(b + 1, opts.batches);
    }
  } finally {
    loader.close();
  }
  const rowsSampled = opts.batches * opts.batchSize;
  const meanNorm = sumNorm / rowsSampled;
  return { meanNorm, meanSqNorm: sumSq / rowsSampled, scale: meanNorm, rowsSampled };
}
