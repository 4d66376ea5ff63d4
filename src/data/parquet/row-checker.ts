/**
 * Checks the row structure of a list column from its levels: every row is a present list of
 * exactly d non-null values (d taken from the first row when not given). Rows may span pages,
 * so the checker keeps the open row's length between pages.
 *
 * The levels are consumed as runs (value, length), straight from the RLE/bit-packed encoding:
 * for the hub layout a row of 2048 values is one short bit-packed group and one RLE run of
 * repetition level 1, and a page's definition levels are a single RLE run, so checking costs a
 * few operations per row instead of one per value.
 */
import { CorruptPageError, forEachRun } from './hybrid.js';

/** Bad data (not a bad file): a null, an empty list, a row of the wrong length. */
export class BadRowError extends Error {}

/** Where a page's hybrid-encoded levels lie. */
export interface EncodedLevels {
  buf: Uint8Array;
  start: number;
  end: number;
  width: number;
}

export class RowChecker {
  private rows = 0;
  private current = -1; // values in the open row; -1: no row open yet
  private d: number;
  private pageStart = { rows: 0, current: -1 };

  constructor(
    private readonly maxDef: number,
    d: number | undefined,
    private readonly firstRow: number,
  ) {
    this.d = d ?? -1;
  }

  /** One page's levels, hybrid-encoded (the fast path). `decodeRep` is only used to locate an error. */
  checkEncoded(rep: EncodedLevels, def: EncodedLevels, n: number, decodeRep: () => Uint8Array): void {
    this.pageStart = { rows: this.rows, current: this.current };
    let index = 0;
    let bad: { index: number; level: number } | undefined;
    forEachRun(def.buf, def.start, def.end, def.width, n, (level, length) => {
      if (level !== this.maxDef && !bad) bad = { index, level };
      index += length;
    });
    if (bad) throw this.nullError(decodeRep(), bad.index, bad.level);
    forEachRun(rep.buf, rep.start, rep.end, rep.width, n, (value, length) => this.repRun(value, length));
  }

  /** One page's levels as arrays (rep[i] === 0 starts a row; def[i] must be maxDef). */
  check(rep: Uint8Array, def: Uint8Array, n: number): void {
    this.pageStart = { rows: this.rows, current: this.current };
    const defs = def.subarray(0, n);
    let first = -1;
    for (let level = 0; level < this.maxDef; level++) {
      const i = defs.indexOf(level);
      if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    if (first >= 0) throw this.nullError(rep, first, defs[first]);
    const reps = rep.subarray(0, n);
    let at = 0;
    while (at < n) {
      const zero = reps.indexOf(0, at);
      const stop = zero < 0 ? n : zero;
      if (stop > at) this.repRun(1, stop - at);
      if (zero < 0) break;
      this.repRun(0, 1);
      at = zero + 1;
    }
  }

  finish(): { rows: number; d: number } {
    if (this.current >= 0) this.closeRow(this.current);
    this.current = -1;
    return { rows: this.rows, d: this.d };
  }

  /** `length` levels of repetition level `value`: 0 starts a new row, 1 continues the open one. */
  private repRun(value: number, length: number): void {
    if (value === 0) {
      for (let k = 0; k < length; k++) {
        if (this.current >= 0) this.closeRow(this.current);
        this.current = 1;
      }
    } else {
      if (this.current < 0) throw new CorruptPageError('first value of the column chunk does not start a row');
      this.current += length;
    }
  }

  private closeRow(length: number): void {
    if (this.d < 0) this.d = length;
    else if (length !== this.d) {
      throw new BadRowError(`row ${this.firstRow + this.rows} has ${length} values, expected d=${this.d}`);
    }
    this.rows++;
  }

  /** The error for the first null (definition level < maxDef) at level `index` of the page. */
  private nullError(rep: Uint8Array, index: number, level: number): BadRowError {
    let row = this.pageStart.rows + (this.pageStart.current >= 0 ? 0 : -1); // the open row, -1 if none
    for (let i = 0; i <= index; i++) if (rep[i] === 0) row++;
    return new BadRowError(
      `row ${this.firstRow + Math.max(row, 0)} has a null or empty list/value (definition level ${level} < ${this.maxDef})`,
    );
  }
}
