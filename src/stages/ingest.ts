/**
 * `ingest`: parquet files (a folder or one file) -> activation store (store.json + data.bin).
 * The work is in src/data/parquet/ingest.ts; this adapter resolves the source path, reports
 * progress and maps the result to outputs.
 */
import { mkdir } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../runtime/stage.js';

const Params = Type.Object(
  {
    source: Type.String({
      minLength: 1,
      description: 'A parquet file, or a folder: all *.parquet under it, sorted by path',
    }),
    column: Type.String({ default: 'activations', description: 'List-of-floats column to ingest' }),
    dtype: Type.Union([Type.Literal('float16'), Type.Literal('float32')], {
      default: 'float16',
      description: 'Store value type (float16 keeps the hub data as is)',
    }),
    d: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Expected values per row (checked); inferred when absent' }),
    ),
    max_rows: Type.Optional(Type.Integer({ minimum: 1, description: 'Stop after this many rows' })),
    non_finite: Type.Optional(
      Type.Union([Type.Literal('refuse'), Type.Literal('keep')], {
        description:
          "NaN, ±inf and values beyond the store dtype's range (float16: |x| >= 65520): 'refuse' (the default) fails naming " +
          "file, row and column; 'keep' stores them as NaN / ±inf, which estimate-norm and training then see",
      }),
    ),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'ingest',
  version: '1',
  description: 'Parquet activations (hub layout: fixed_size_list<halffloat>) -> flat activation store',
  params: Params,
  outputs: {
    store: { kind: 'dir', description: 'Activation store folder (store.json + data.bin)' },
    rows: { kind: 'value', description: 'Rows in the store' },
    d: { kind: 'value', description: 'Values per row' },
    dtype: { kind: 'value', description: 'Store value type: float16 or float32' },
  },
  heavy: true,
  inputFiles: (params) => [params.source],
  async run(ctx) {
    const { findParquetFiles, ingestParquet } = await import('../data/parquet/ingest.js');
    const p = ctx.params;
    const storeDir = join(ctx.outDir, 'store');
    await mkdir(storeDir, { recursive: true });
    const source = isAbsolute(p.source) ? p.source : resolve(ctx.pipelineDir, p.source);
    const { files, root } = await findParquetFiles(source);
    ctx.log(`ingest: ${files.length} parquet file(s) from ${source}, column "${p.column}", dtype ${p.dtype}`);
    const result = await ingestParquet({
      files,
      root,
      column: p.column,
      dtype: p.dtype,
      d: p.d,
      maxRows: p.max_rows,
      nonFinite: p.non_finite,
      outDir: storeDir,
      signal: ctx.signal,
      log: ctx.log,
      onProgress: (q) => {
        const rowsPerS = q.rows / Math.max(q.seconds, 1e-9);
        const mbPerS = q.compressedBytes / 1e6 / Math.max(q.seconds, 1e-9);
        ctx.progress({
          fraction: q.rowGroupsDone / q.rowGroupsTotal,
          rate: rowsPerS,
          unit: 'rows',
          message: `row group ${q.rowGroupsDone}/${q.rowGroupsTotal}, ${q.rows} rows, ${mbPerS.toFixed(1)} MB/s`,
        });
      },
    });
    const { header } = result;
    ctx.log(
      `ingest: ${header.rows} rows x ${header.d} in ${result.seconds.toFixed(1)} s ` +
        `(${(result.values / result.seconds / 1e6).toFixed(1)}M values/s; row groups: ` +
        `${result.decoders.typed} typed, ${result.decoders.generic} generic)`,
    );
    return { store: 'store', rows: header.rows, d: header.d, dtype: header.dtype };
  },
});
