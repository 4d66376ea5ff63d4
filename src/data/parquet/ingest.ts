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

/** `*.parquet` files under `source` (a file or a folder), sorted by path. */
export async function findParquetFiles(source: string): Promise<{ files: string[]; root: string }> {
  const info = await stat(source).catch(() => {
    throw new Error(`ingest source not found: ${source}`);
  });
  if (info.isFile()) return { files: [source], root: join(source, '..') };
  const entries = await readdir(source, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((e) => e.isFile() && e.name.endsWith('.parquet'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name))
    .sort();
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
        const group = await file.readRowGroup(g, d);
        d = group.d;
        const take = Math.min(group.rows, maxRows - writer.rowCount);
        await writer.append(group.values.subarray(0, take * d), take, d);
        fileRows += take;
        decoders[group.decoder]++;
        compressedBytes += group.compressedBytes;
        rowGroupsDone++;
        opts.onProgress?.({ rowGroupsDone, rowGroupsTotal, rows: writer.rowCount, compressedBytes, seconds: seconds() });
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

