/**
 * The points a law is fitted to: gathered from params lists or a CSV file, then filtered.
 * Every point remembers where it came from (`x[3]`, `row 17 of runs.csv`), so that an error
 * about a bad value names the exact input, and every dropped point says which filter dropped it.
 */
import { readFileSync } from 'node:fs';
import { LAWS, type LawName } from './laws.js';

export interface FitPoint {
  /** power laws: the abscissa; chinchilla: unused. */
  x?: number;
  N?: number;
  D?: number;
  /** chinchilla: unique vectors among the D the run trained on (D / U passes). */
  U?: number;
  /** chinchilla with a repetition model: effective data (repetition.ts). */
  D_eff?: number;
  y: number;
  kept: boolean;
  /** Filter that dropped the point: 'select_min_by' | 'x_range' | 'drop_highest'. */
  dropped_by?: string;
  /** Where the point came from, for error messages. */
  source: string;
  /** Its run missed its target L0 but is fitted anyway: too few runs were on target (the law is then not identified). */
  off_target?: boolean;
}

/** Lists given directly (usually references to upstream outputs). */
export interface ListInput {
  x?: number[];
  y?: number[];
  N?: number[];
  D?: number[];
  C?: number[];
  U?: number[];
}

export interface CsvInput {
  path: string;
  /** Display name used in messages (the path as written in the pipeline). */
  name: string;
  x_column?: string;
  y_column?: string;
  N_column?: string;
  D_column?: string;
  C_column?: string;
}

export interface Filters {
  /** Parallel to the points: false drops the point (a run that missed its target L0: not at matched sparsity). */
  on_target?: Array<boolean | null>;
  select_min_by?: number[];
  x_min?: number;
  x_max?: number;
  drop_highest?: number;
}

export function pointsFromLists(law: LawName, input: ListInput): FitPoint[] {
  const y = required(input.y, 'y');
  if (law !== 'chinchilla') {
    const x = required(input.x, 'x');
    sameLength({ x, y });
    return x.map((xi, i) => ({ x: xi, y: y[i], kept: true, source: `x[${i}]=${xi}, y[${i}]=${y[i]}` }));
  }
  const N = required(input.N, 'N');
  if (input.D && input.C) throw new Error('fit-law: give either D or C (training FLOPs, D = C / (6 N)), not both');
  if (input.D) {
    const D = input.D;
    sameLength({ N, D, y });
    const points: FitPoint[] = N.map((n, i) => ({
      N: n,
      D: D[i],
      y: y[i],
      kept: true,
      source: `N[${i}]=${n}, D[${i}]=${D[i]}, y[${i}]=${y[i]}`,
    }));
    if (input.U) {
      const U = input.U;
      sameLength({ N, U });
      U.forEach((u, i) => {
        if (!(u > 0)) throw new Error(`fit-law: U[${i}] = ${u} must be a positive number of unique vectors`);
        points[i].U = u;
      });
    }
    return points;
  }
  if (input.U) throw new Error('fit-law: U (unique vectors per run) needs D (vectors trained on), not C');
  const C = required(input.C, 'D (or C)');
  sameLength({ N, C, y });
  return N.map((n, i) => ({
    N: n,
    D: C[i] / (6 * n),
    y: y[i],
    kept: true,
    source: `N[${i}]=${n}, C[${i}]=${C[i]}, y[${i}]=${y[i]}`,
  }));
}

export function pointsFromCsv(law: LawName, input: CsvInput): FitPoint[] {
  let text: string;
  try {
    text = readFileSync(input.path, 'utf8');
  } catch (e) {
    throw new Error(`fit-law: cannot read csv ${input.name} (${input.path}): ${(e as Error).message}`);
  }
  const rows = parseCsv(text);
  if (rows.length < 2) throw new Error(`fit-law: csv ${input.name} has no data rows`);
  const header = rows[0];
  const column = (field: string, name: string | undefined): number[] | undefined => {
    if (name === undefined) return undefined;
    const j = header.indexOf(name);
    if (j < 0)
      throw new Error(`fit-law: ${field} "${name}" is not a column of ${input.name} (columns: ${header.join(', ')})`);
    return rows.slice(1).map((r, i) => {
      const v = Number(r[j]);
      if (r[j] === undefined || r[j].trim() === '' || !Number.isFinite(v)) {
        throw new Error(`fit-law: row ${i + 2} of ${input.name}, column "${name}": "${r[j] ?? ''}" is not a number`);
      }
      return v;
    });
  };
  const y = column('y_column', input.y_column ?? (law === 'chinchilla' ? 'loss' : undefined));
  const points = pointsFromLists(law, {
    x: column('x_column', input.x_column),
    y,
    N: column('N_column', input.N_column),
    D: column('D_column', input.D_column),
    C: column('C_column', input.C_column),
  });
  points.forEach((p, i) => (p.source = `row ${i + 2} of ${input.name}`));
  return points;
}

/** Applies the filters in a fixed order: missing values, select_min_by, x range, drop_highest. */
export function applyFilters(law: LawName, points: FitPoint[], filters: Filters): void {
  // A run that diverged or failed reports a null y: it is no point of the law.
  for (const p of points) {
    if (typeof p.y !== 'number' || Number.isNaN(p.y)) {
      p.kept = false;
      p.dropped_by = 'no_value';
    }
  }
  if (filters.on_target) dropOffTarget(law, points, filters.on_target);
  if (filters.select_min_by) selectMinBy(law, points, filters.select_min_by);
  const xOf = (p: FitPoint) => (law === 'chinchilla' ? p.N! : p.x!);
  for (const p of points) {
    if (!p.kept) continue;
    const x = xOf(p);
    if ((filters.x_min !== undefined && x < filters.x_min) || (filters.x_max !== undefined && x > filters.x_max)) {
      p.kept = false;
      p.dropped_by = 'x_range';
    }
  }
  const k = filters.drop_highest ?? 0;
  if (k > 0) {
    const order = points.filter((p) => p.kept).sort((a, b) => b.y - a.y);
    for (const p of order.slice(0, k)) {
      p.kept = false;
      p.dropped_by = 'drop_highest';
    }
  }
}

/**
 * Leaves out the points whose run missed its target L0. When that leaves fewer distinct points
 * than the law has parameters, they are fitted after all and marked `off_target`: the fit then
 * reports itself not identified (a decision falls back) instead of failing the pipeline.
 */
function dropOffTarget(law: LawName, points: FitPoint[], onTarget: Array<boolean | null>): void {
  if (onTarget.length !== points.length) {
    throw new Error(`fit-law: on_target has ${onTarget.length} values but there are ${points.length} points`);
  }
  const off = points.filter((p, i) => p.kept && onTarget[i] === false);
  const key = (p: FitPoint) => (law === 'chinchilla' ? `${p.N},${p.D}` : `${p.x}`);
  const onTargetLeft = new Set(points.filter((p) => p.kept && !off.includes(p)).map(key)).size;
  const tooFew = onTargetLeft < LAWS[law].paramNames.length;
  for (const p of off) {
    if (tooFew) p.off_target = true;
    else {
      p.kept = false;
      p.dropped_by = 'off_target';
    }
  }
}

/** For each distinct x keep only the point with the lowest score (e.g. the best learning rate). */
function selectMinBy(law: LawName, points: FitPoint[], scores: number[]): void {
  if (scores.length !== points.length) {
    throw new Error(`fit-law: select_min_by has ${scores.length} values but there are ${points.length} points`);
  }
  const key = (p: FitPoint) => (law === 'chinchilla' ? `${p.N},${p.D}` : `${p.x}`);
  const best = new Map<string, number>();
  points.forEach((p, i) => {
    if (!p.kept || !Number.isFinite(scores[i])) return; // a diverged run (NaN loss) never wins
    const k = key(p);
    const j = best.get(k);
    if (j === undefined || scores[i] < scores[j]) best.set(k, i);
  });
  points.forEach((p, i) => {
    if (p.kept && best.get(key(p)) !== i) {
      p.kept = false;
      p.dropped_by = 'select_min_by';
    }
  });
}

/** Every kept value must be a finite positive number: the fit is in log space. */
export function checkPositive(law: LawName, points: FitPoint[]): void {
  const fields = law === 'chinchilla' ? (['N', 'D', 'y'] as const) : (['x', 'y'] as const);
  for (const p of points) {
    if (!p.kept) continue;
    for (const f of fields) {
      const v = p[f];
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
        throw new Error(
          `fit-law: point ${p.source}: ${f} = ${v} is not a positive number; ` +
            `a ${law} law is fitted in log space and needs positive ${fields.join(', ')}`,
        );
      }
    }
  }
}

function required(v: number[] | undefined, name: string): number[] {
  if (!v) throw new Error(`fit-law: missing ${name}: give it as a list param or as a csv column`);
  return v;
}

function sameLength(lists: Record<string, number[]>): void {
  const entries = Object.entries(lists);
  const n = entries[0][1].length;
  for (const [name, list] of entries) {
    if (list.length !== n) {
      const desc = entries.map(([k, l]) => `${k}: ${l.length}`).join(', ');
      throw new Error(`fit-law: ${name} has ${list.length} values, expected ${n} (lengths ${desc})`);
    }
  }
}

/** Minimal RFC 4180 CSV: quoted fields, doubled quotes, CRLF. Empty trailing lines dropped. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows.filter((r) => !(r.length === 1 && r[0].trim() === ''));
}
