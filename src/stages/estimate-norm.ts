/**
 * `estimate-norm`: the mean L2 norm of activation rows, the seed's normalisation factor.
 * Adapter only; the method lives in src/data/norm.ts.
 */
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../runtime/stage.js';
import { DEFAULT_EVAL_ROWS } from '../data/store-format.js';

const Params = Type.Object(
  {
    store: Type.String({ description: 'Activation store folder (usually ${{ stages.ingest.outputs.store }})' }),
    batches: Type.Integer({ minimum: 1, default: 100, description: 'Random batches sampled (the seed: 100)' }),
    batch_size: Type.Integer({ minimum: 1, default: 1024, description: 'Rows per batch (the seed: 1024)' }),
    seed: Type.Integer({ default: 0, description: 'Seed of the batch sampling' }),
    eval_rows: Type.Integer({
      minimum: 0,
      default: DEFAULT_EVAL_ROWS,
      description:
        "Rows held out at the end of the store (must match train-sae's eval split; 0 = sample from every row)",
    }),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'estimate-norm',
  version: '1',
  description:
    'Mean L2 norm of activation rows over `batches` random batches of `batch_size` rows from the training split ' +
    '(seeded, without replacement within an epoch), plus the mean squared norm. `scale` is the factor the trainer ' +
    'divides inputs by: the mean norm itself, unrounded (the seed measured 3.4179 and rounded it to 3.4 by hand).',
  params: Params,
  inputFiles: (p) => [p.store],
  outputs: {
    mean_norm: { kind: 'value', description: 'Mean of ||x||_2 over the sampled rows' },
    mean_sq_norm: { kind: 'value', description: 'Mean of ||x||_2^2 over the sampled rows' },
    scale: { kind: 'value', description: 'Normalisation factor: inputs are divided by it (= mean_norm)' },
    rows_sampled: { kind: 'value', description: 'batches * batch_size' },
  },
  async run(ctx) {
    const { openStore } = await import('../data/loader.js');
    const { estimateNorm } = await import('../data/norm.js');
    const p = ctx.params;
    const store = openStore(resolve(ctx.pipelineDir, p.store));
    try {
      const trainRows = store.rows - p.eval_rows;
      if (p.batches * p.batch_size > trainRows) {
        ctx.log(
          `note: ${p.batches * p.batch_size} rows sampled from ${trainRows} training rows: some rows are sampled twice`,
        );
      }
      const started = Date.now();
      const est = await estimateNorm(store, {
        batches: p.batches,
        batchSize: p.batch_size,
        seed: p.seed,
        evalRows: p.eval_rows,
        signal: ctx.signal,
        onBatch: (done, total) => {
          const rate = (done * p.batch_size) / Math.max(1e-3, (Date.now() - started) / 1000);
          ctx.progress({ fraction: done / total, message: `batch ${done}/${total}`, rate, unit: 'rows' });
        },
      });
      ctx.log(
        `mean norm ${est.meanNorm.toFixed(4)} (mean squared ${est.meanSqNorm.toFixed(4)}) over ${est.rowsSampled} rows of ${store.dir}`,
      );
      return { mean_norm: est.meanNorm, mean_sq_norm: est.meanSqNorm, scale: est.scale, rows_sampled: est.rowsSampled };
    } finally {
      store.close();
    }
  },
});
