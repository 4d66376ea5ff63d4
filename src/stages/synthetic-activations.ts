/**
 * `synthetic-activations`: the embedded default data source. Activation vectors built from a
 * known dictionary of ground-truth features with Zipf-distributed firing frequencies (see
 * src/data/synthetic.ts), written as parquet in exactly the hub dataset's layout so the same
 * ingest path runs on them, plus the dictionary and frequencies for recovery metrics.
 */
import { Type } from '@sinclair/typebox';
import { defineStage } from '../runtime/stage.js';

const Params = Type.Object(
  {
    d: Type.Integer({
      minimum: 1,
      maximum: 65536,
      default: 64,
      description: 'Dimension of the activation vectors (64..2048 in the study)',
    }),
    rows: Type.Integer({ minimum: 1, default: 200000, description: 'Rows generated' }),
    n_features: Type.Optional(Type.Integer({ minimum: 1, description: 'Ground-truth features (default 8 * d)' })),
    mean_active: Type.Number({
      exclusiveMinimum: 0,
      default: 8,
      description: 'Expected number of active features per row (L0)',
    }),
    zipf_exponent: Type.Number({
      minimum: 0,
      default: 1.0,
      description: 'Feature of rank i fires with probability proportional to (i+1)^-zipf_exponent',
    }),
    correlation: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0,
      description: "Fraction of the rarest group member's firings that are joint firings of its whole group",
    }),
    group_size: Type.Integer({
      minimum: 1,
      default: 4,
      description: 'Features per correlated group (consecutive ranks)',
    }),
    noise_std: Type.Number({
      minimum: 0,
      default: 0.01,
      description: 'Std of the i.i.d. Gaussian noise per coordinate',
    }),
    bias_norm: Type.Number({
      minimum: 0,
      default: 0,
      description: 'Norm of a constant bias added to every row (random direction)',
    }),
    seed: Type.Integer({ default: 0 }),
    files: Type.Integer({ minimum: 1, default: 1, description: 'Parquet files the rows are split over' }),
    row_group_rows: Type.Integer({
      minimum: 1,
      default: 8192,
      description: 'Rows per parquet row group (the hub dataset: 8192)',
    }),
  },
  { additionalProperties: false },
);

/** Rows generated per step: bounded memory (~4M values) whatever d and row_group_rows are. */
const CHUNK_VALUES = 1 << 22;

export default defineStage({
  name: 'synthetic-activations',
  version: '1',
  description:
    'Synthetic activations x = sum_i c_i f_i + b + noise from a known dictionary of random unit features with ' +
    'Zipf-distributed frequencies and lognormal (mean 1) magnitudes, written as parquet in the hub dataset layout ' +
    '(column activations, fixed_size_list<halffloat>[d], zstd, dictionary), with the ground-truth dictionary.',
  params: Params,
  outputs: {
    dir: { kind: 'dir', description: 'Folder with data/train-0000i-of-0000N.parquet' },
    dictionary: {
      kind: 'file',
      description: 'dictionary.safetensors: features [n_features, d] f32, frequencies [n_features] f32',
    },
    d: { kind: 'value', description: 'Dimension of the rows' },
    rows: { kind: 'value', description: 'Rows generated' },
    n_features: { kind: 'value', description: 'Ground-truth features' },
  },
  heavy: true,
  async run(ctx) {
    const { mkdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { SyntheticGenerator } = await import('../data/synthetic.js');
    const { writeSafetensors } = await import('../data/safetensors.js');
    const { writeHubLayoutParquetStream } = await import('../data/parquet/write-hub-layout.js');
    const p = ctx.params;
    const nFeatures = p.n_features ?? 8 * p.d;
    if (p.files > p.rows)
      throw new Error(`synthetic-activations: files=${p.files} is more than rows=${p.rows} (a file would be empty)`);
    const gen = new SyntheticGenerator({
      d: p.d,
      nFeatures,
      meanActive: p.mean_active,
      zipfExponent: p.zipf_exponent,
      correlation: p.correlation,
      groupSize: p.group_size,
      noiseStd: p.noise_std,
      biasNorm: p.bias_norm,
      seed: p.seed,
    });
    writeSafetensors(
      join(ctx.outDir, 'dictionary.safetensors'),
      {
        features: { dtype: 'F32', shape: [nFeatures, p.d], data: gen.dictionary },
        frequencies: { dtype: 'F32', shape: [nFeatures], data: Float32Array.from(gen.frequencies) },
      },
      { source: 'synthetic-activations', params: JSON.stringify({ ...p, n_features: nFeatures }) },
    );

    mkdirSync(join(ctx.outDir, 'data/data'), { recursive: true });
    const chunkRows = Math.max(1, Math.floor(CHUNK_VALUES / p.d));
    const started = Date.now();
    for (let file = 0; file < p.files; file++) {
      const first = Math.floor((file * p.rows) / p.files);
      const last = Math.floor(((file + 1) * p.rows) / p.files);
      const name = `train-${String(file).padStart(5, '0')}-of-${String(p.files).padStart(5, '0')}.parquet`;
      async function* chunks() {
        for (let r = first; r < last; r += chunkRows) {
          ctx.signal.throwIfAborted();
          yield gen.nextRows(Math.min(chunkRows, last - r));
          const seconds = (Date.now() - started) / 1000;
          const rate = gen.rowsDone / Math.max(seconds, 1e-3);
          ctx.progress({
            fraction: gen.rowsDone / p.rows,
            message: `${gen.rowsDone}/${p.rows} rows, file ${file + 1}/${p.files}`,
            rate,
            unit: 'rows',
            etaSeconds: (p.rows - gen.rowsDone) / rate,
          });
        }
      }
      await writeHubLayoutParquetStream(join(ctx.outDir, 'data/data', name), chunks(), p.d, {
        rowGroupSize: p.row_group_rows,
      });
    }
    const l0 = gen.activeCounts.reduce((a, b) => a + b, 0) / p.rows;
    ctx.log(
      `${p.rows} rows of d=${p.d} from ${nFeatures} features in ` +
        `${((Date.now() - started) / 1000).toFixed(1)} s; empirical L0 ${l0.toFixed(3)} (expected ${p.mean_active})`,
    );
    return { dir: 'data', dictionary: 'dictionary.safetensors', d: p.d, rows: p.rows, n_features: nFeatures };
  },
});
