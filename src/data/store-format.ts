/**
 * The activation store, as the ingest stage writes it and the loader reads it: a folder with
 * `data.bin` (rows * d values, row-major, little-endian: float16 bits or float32) and
 * `store.json`, this header. The one definition both sides use.
 */

export type StoreDtype = 'float16' | 'float32';

export const STORE_HEADER_FILE = 'store.json';
export const STORE_DATA_FILE = 'data.bin';

/** One source file the rows came from, in order. */
export interface StoreSource {
  path: string;
  rows: number;
  sha256: string;
}

export interface StoreHeader {
  format: 'activation-store/1';
  rows: number;
  d: number;
  dtype: StoreDtype;
  byteOrder: 'little';
  sources: StoreSource[];
  column: string;
}
