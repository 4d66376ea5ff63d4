/**
 * store.json (written by ingest, read by every stage that opens an activation store): the header
 * of an activation store, data.bin beside it. Version: `format: 'activation-store/1'`.
 */
import { Type, type Static } from '@sinclair/typebox';

export const STORE_FORMAT = 'activation-store/1';

export const StoreDtype = Type.Union([Type.Literal('float16'), Type.Literal('float32')]);
export type StoreDtype = Static<typeof StoreDtype>;

/** One source file the rows came from, in order. */
export const StoreSource = Type.Object({
  path: Type.String(),
  rows: Type.Integer({ minimum: 0 }),
  sha256: Type.String(),
});
export type StoreSource = Static<typeof StoreSource>;

/** data.bin holds rows * d values, row-major, little-endian: float16 bits or float32. */
export const StoreHeader = Type.Object({
  format: Type.Literal(STORE_FORMAT),
  rows: Type.Integer({ minimum: 0 }),
  d: Type.Integer({ minimum: 1 }),
  dtype: StoreDtype,
  byteOrder: Type.Literal('little'),
  sources: Type.Array(StoreSource),
  /** The parquet column the activations were read from. */
  column: Type.String(),
});
export type StoreHeader = Static<typeof StoreHeader>;
