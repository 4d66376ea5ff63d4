/**
 * Checks the row structure of a list column from its levels: every row is a present list of
 * exactly d non-null values (d taken from the first row when not given). Rows may span pages,
 * so the checker keeps the open row's length between calls.
 */
import { CorruptPageError } from './hybrid.js';

/** Bad data (not a bad file): a null, an empty list, a row of the wrong length. */
export class BadRowError extends Error {}

export class RowChecker {
  private rows = 0;
  private current = -1; // values in the open row; -1: no row open yet
  private d: number;

  constructor(
    private readonly maxDef: number,
    d: number | undefined,
    private readonly firstRow: number,
  ) {
    this.d = d ?? -1;
  }

  /**
   * Levels of one page: rep[i] === 0 starts a new row; def[i] must be maxDef (a value).
   * Uses TypedArray.indexOf (native) rather than a per-value JS loop: this runs on every value.
   */
  check(rep: Uint8Array, def: Uint8Array, n: number): void {
    const defs = def.subarray(0, n);
    for (let level = 0; level < this.maxDef; level++) {
      const i = defs.indexOf(level);
      if (i >= 0) this.nullAt(rep, i, level);
    }
    const reps = rep.subarray(0, n);
    if (n > 0 && this.current < 0 && reps[0] !== 0) {
      throw new CorruptPageError('first value of the column chunk does not start a row');
    }
    let start = reps.indexOf(0);
    if (start < 0) {
      this.current += n; // the open row continues through this page
      return;
    }
    if (this.current >= 0) this.closeRow(this.current + start);
    for (;;) {
      const next = reps.indexOf(0, start + 1);
      if (next < 0) break;
      this.closeRow(next - start);
      start = next;
    }
    this.current = n - start;
  }

  /** Reports the row holding the first null (definition level < maxDef) of this page. */
  private nullAt(rep: Uint8Array, index: number, level: number): never {
    let row = this.rows + (this.current >= 0 ? 0 : -1); // the open row, -1 if none
    for (let i = 0; i <= index; i++) if (rep[i] === 0) row++;
    throw new BadRowError(
      `row ${this.firstRow + Math.max(row, 0)} has a null or empty list/value (definition level ${level} < ${this.maxDef})`,
    );
  }

  finish(): { rows: number; d: number } {
    if (this.current >= 0) this.closeRow(this.current);
    this.current = -1;
    return { rows: this.rows, d: this.d };
  }

  private closeRow(length: number): void {
    if (this.d < 0) this.d = length;
    else if (length !== this.d) {
      throw new BadRowError(`row ${this.firstRow + this.rows} has ${length} values, expected d=${this.d}`);
    }
    this.rows++;
  }
}
