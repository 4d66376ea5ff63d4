/**
 * The activation store, as the ingest stage writes it and the loader reads it: a folder with
 * `data.bin` (rows * d values, row-major, little-endian: float16 bits or float32) and
 * `store.json`, its header (StoreHeader in src/formats/store.ts).
 */

export const STORE_HEADER_FILE = 'store.json';
export const STORE_DATA_FILE = 'data.bin';

/** Held-out rows at the end of the store, unless told otherwise (train-sae and estimate-norm agree on it). */
export const DEFAULT_EVAL_ROWS = 8192;
