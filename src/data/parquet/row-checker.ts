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

  /** Levels of one page: rep[i] === 0 starts a new row; def[i] must be maxDef (a value). */
  check(rep: Uint8Array, def: Uint8Array, n: number): void {
    const maxDef = this.maxDef;
    let current = this.current;
    if (n > 0 && current < 0 && rep[0] !== 0) {
      throw new CorruptPageError('first value of the column chunk does not start a row');
    }
    for (let i = 0; i < n; i++) {
      if (rep[i] === 0) {
        if (current >= 0) this.closeRow(current);
        current = 0;
      }
      if (def[i] !== maxDef) {
        this.current = current;
        throw new BadRowError(`row ${this.firstRow + this.rows} has a null or empty list/value (definition level ${def[i]} < ${maxDef})`);
      }
      current++;
    }
    this.current = current;
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
