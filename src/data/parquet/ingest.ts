/**
 * Parquet files -> activation store, streaming row group by row group.
 *
 * All footers are read first, so that a missing column or an unreadable file fails before any
 * data is decoded, and so that progress can count row groups. Each file's sha256 is computed by
 * a concurrent read stream while its row groups are decoded.
 */
import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';
import { ParquetColumnFile } from './reader.js';
import type { NativeValues } from './fast-chunk.js';
import { decodeHalf } from '../float16.js';
import { StoreWriter, type StoreDtype, type StoreHeader } from '../store-writer.js';
import { hashFile } from '../../util/hash.js';

export interface IngestOptions {
  /** Parquet files, in order. */
  files: string[];
  /** Folder the files were found in: source paths in store.json are relative to it. */
  root?: string;
  column: string;
  dtype: StoreDtype;
  /** Expected row length; inferred from the first row when absent. */
  d?: number;
  /** Stop after this many rows. */
  maxRows?: number;
  /**
   * NaN, ±inf and values beyond the store dtype's range: refused (the default: an error naming
   * file, row and column) or kept (stored as NaN / ±inf).
   */
  nonFinite?: 'refuse' | 'keep';
  outDir: string;
  signal?: AbortSignal;
  onProgress?(p: IngestProgress): void;
  log?(message: string): void;
}

export interface IngestProgress {
  rowGroupsDone: number;
  rowGroupsTotal: number;
  rows: number;
  compressedBytes: number;
  seconds: number;
}

export interface IngestResult {
  header: StoreHeader;
  seconds: number;
  values: number;
  compressedBytes: number;
  decoders: { typed: number; generic: number };
}

/**
 * `*.parquet` files under `source` (a file or a folder), sorted by path. Symbolic links to files
 * count (a hub cache snapshot is all links into its blob folder); a dangling one is an error.
 */
export async function findParquetFiles(source: string): Promise<{ files: string[]; root: string }> {
  const info = await stat(source).catch(() => {
    throw new Error(`ingest source not found: ${source}`);
  });
  if (info.isFile()) return { files: [source], root: join(source, '..') };
  const entries = await readdir(source, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const e of entries) {
    if (!e.name.endsWith('.parquet')) continue;
    const path = join(e.parentPath ?? (e as unknown as { path: string }).path, e.name);
    if (e.isFile()) files.push(path);
    else if (e.isSymbolicLink()) {
      const target = await stat(path).catch(() => {
        throw new Error(`${path}: a symbolic link to a missing file (an incomplete download?)`);
      });
      if (target.isFile()) files.push(path);
    }
  }
  files.sort();
  if (files.length === 0) throw new Error(`no *.parquet files under ${source}`);
  return { files, root: source };
}

export async function ingestParquet(opts: IngestOptions): Promise<IngestResult> {
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  const opened = await openAll(opts.files, opts.column);
  const writer = await StoreWriter.create(opts.outDir, { dtype: opts.dtype, column: opts.column });
  const rowGroupsTotal = opened.reduce((s, f) => s + f.rowGroupCount, 0);
  const maxRows = opts.maxRows ?? Infinity;
  const decoders = { typed: 0, generic: 0 };
  let d = opts.d;
  let rowGroupsDone = 0;
  let compressedBytes = 0;
  try {
    for (const file of opened) {
      if (writer.rowCount >= maxRows) break;
      const digest = hashFile(file.path);
      digest.catch(() => {}); // awaited below; avoid an unhandled rejection if decoding fails first
      let fileRows = 0;
      for (let g = 0; g < file.rowGroupCount && writer.rowCount < maxRows; g++) {
        if (opts.signal?.aborted) throw new Error('ingest aborted');
        if (file.rowsInGroup(g) === 0) {
          rowGroupsDone++; // valid and empty: what pyarrow writes for an empty table
          continue;
        }
        const group = await file.readRowGroup(g, d);
        d = group.d;
        const take = Math.min(group.rows, maxRows - writer.rowCount);
        if (opts.nonFinite !== 'keep')
          refuseNonFinite(
            group.values.subarray(0, take * d),
            d,
            opts.dtype,
            `${file.path}: row group ${g}`,
            group.firstRow,
            opts.column,
          );
        await writer.append(group.values.subarray(0, take * d), take, d);
        fileRows += take;
        decoders[group.decoder]++;
        compressedBytes += group.compressedBytes;
        rowGroupsDone++;
        opts.onProgress?.({
          rowGroupsDone,
          rowGroupsTotal,
          rows: writer.rowCount,
          compressedBytes,
          seconds: seconds(),
        });
      }
      const path = opts.root ? relative(opts.root, file.path) : basename(file.path);
      writer.addSource({ path, rows: fileRows, sha256: await digest });
      opts.log?.(`${path}: ${fileRows} rows`);
    }
    const header = await writer.finish();
    return { header, seconds: seconds(), values: header.rows * header.d, compressedBytes, decoders };
  } catch (err) {
    await writer.abort();
    throw err;
  } finally {
    await Promise.all(opened.map((f) => f.close()));
  }
}

/** Above this magnitude a value rounds to infinity in the store's dtype. */
const OVERFLOW: Record<StoreDtype, number> = { float16: 65520, float32: 2 ** 128 - 2 ** 103 };

/**
 * Throws, naming the row and column, at the first value that is NaN or infinite or would
 * become infinite in the store. Values stay in their file's type: float16 bits are checked by
 * their exponent field, numbers by magnitude.
 */
function refuseNonFinite(
  values: NativeValues,
  d: number,
  dtype: StoreDtype,
  where: string,
  firstRow: number,
  column: string,
): void {
  let bad = -1;
  if (values instanceof Uint16Array) {
    for (let i = 0; i < values.length; i++) {
      if ((values[i] & 0x7c00) === 0x7c00) {
        bad = i;
        break;
      }
    }
  } else {
    const limit = OVERFLOW[dtype];
    for (let i = 0; i < values.length; i++) {
      if (!(Math.abs(values[i]) < limit)) {
        bad = i;
        break;
      }
    }
  }
  if (bad < 0) return;
  const value = values instanceof Uint16Array ? decodeHalf(values[bad]) : values[bad];
  const what = Number.isFinite(value) ? `${value} is beyond the ${dtype} range of the store` : `${value} is not finite`;
  throw new Error(
    `${where}, row ${firstRow + Math.floor(bad / d)}, column ${column}[${bad % d}]: ${what} ` +
      `(non_finite: keep stores such values as NaN / ±inf)`,
  );
}

async function openAll(files: string[], column: string): Promise<ParquetColumnFile[]> {
  const opened: ParquetColumnFile[] = [];
  try {
    for (const path of files) opened.push(await ParquetColumnFile.open(path, column));
  } catch (err) {
    await Promise.all(opened.map((f) => f.close()));
    throw err;
  }
  return opened;
}
