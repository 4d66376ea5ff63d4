/**
 * Fallback for layouts the typed-array path does not cover (DELTA_*,
 * deprecated BIT_PACKED levels, ...): hyparquet's generic reader, which is correct for all of
 * them but builds JS arrays of numbers (slow, memory-hungry), one row group at a time.
 */
import type { AsyncBuffer, FileMetaData } from 'hyparquet';
import { parquetReadObjects } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import type { ColumnLayout } from './column-layout.js';
import { allocValues, type DecodedChunk } from './fast-chunk.js';
import { encodeHalf } from '../float16.js';
import { BadRowError } from './row-checker.js';

export async function decodeRowGroupGeneric(
  file: AsyncBuffer,
  metadata: FileMetaData,
  layout: ColumnLayout,
  range: { firstRow: number; rows: number; d?: number },
): Promise<DecodedChunk> {
  const records = await parquetReadObjects({
    file,
    metadata,
    columns: [layout.column],
    rowStart: range.firstRow,
    rowEnd: range.firstRow + range.rows,
    compressors,
  });
  if (records.length !== range.rows) {
    throw new Error(`read ${records.length} rows, the row group says ${range.rows}`);
  }
  let d = range.d ?? -1;
  let values = allocValues(layout.element, 0);
  records.forEach((record, r) => {
    const row = record[layout.column] as ArrayLike<number | null> | null | undefined;
    const rowNumber = range.firstRow + r;
    if (!row || row.length === 0) throw new BadRowError(`row ${rowNumber} has a null or empty list`);
    if (d < 0) d = row.length;
    if (row.length !== d) throw new BadRowError(`row ${rowNumber} has ${row.length} values, expected d=${d}`);
    if (values.length === 0) values = allocValues(layout.element, range.rows * d);
    for (let i = 0; i < d; i++) {
      const v = row[i];
      if (v === null || v === undefined) throw new BadRowError(`row ${rowNumber} has a null value at index ${i}`);
      // hyparquet turns float16 into numbers; they are exact halves, so converting back is lossless
      values[r * d + i] = layout.element === 'float16' ? encodeHalf(v) : v;
    }
  });
  return { values, rows: range.rows, d };
}
