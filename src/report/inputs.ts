/**
 * Loads everything the report shows: fit results (fit.json), training logs (metrics.jsonl),
 * the FLOP budget, the final evaluation, provenance and versions.
 *
 * The report must work with whatever it is given (a pipeline may have no learning-rate
 * sweep, or no final run yet), so every input is optional except the title; malformed
 * files are errors that name the file, line and field, never silently skipped.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Provenance } from '../util/provenance.js';

// ---------------------------------------------------------------------------------------
// Types (shapes fixed by notes/formats.md; extra fields are kept, not required)
// ---------------------------------------------------------------------------------------

export interface FitPoint { x?: number; N?: number; D?: number; y: number; kept: boolean; dropped_by?: string }
/** A curve row; chinchilla fits have one curve per N instead: {N, points: [{x: D, y, lo, hi}]}. */
export interface CurvePoint {
  x: number;
  y: number;
  lo?: number | null;
  hi?: number | null;
  N?: number;
  points?: Array<{ x: number; y: number; lo?: number | null; hi?: number | null }>;
}
/** A prediction at x (chinchilla: at N and D); lo/hi are null when there was no bootstrap. */
export interface Prediction {
  x: number;
  N?: number;
  D?: number;
  y: number;
  lo?: number | null;
  hi?: number | null;
  extrapolation?: number;
}

export interface FitResult {
  law: string;
  formula?: string;
  x_label?: string;
  y_label?: string;
  /** Chinchilla: the second variable's name (x_label is N's). */
  d_label?: string;
  params: Record<string, number>;
  /** null where the bootstrap gave no interval. */
  intervals?: Record<string, [number, number] | null>;
  confidence?: number;
  points: FitPoint[];
  residuals?: number[];
  goodness?: { r2?: number | null; rmse_log?: number | null; objective?: number | null };
  predictions?: Prediction[];
  curve?: CurvePoint[];
  warnings?: string[];
  /** fit-law / lr-law: whether the data pin the parameters down (src/fit/identify.ts). */
  identification?: { identified: boolean; condition_number: number | null; reasons: string[]; design_warnings?: string[]; rule?: string };
  /** lr-law: the per-width optima. */
  optima?: Array<{ width: number; best_swept: number | null; optimum: number | null; interval: [number, number] | null; edge: string | null; note: string | null }>;
  /** chinchilla with a repetition model. */
  repetition?: { model: string; r_star: number; unique_available: number; max_measured_passes: number };
}

/** A decision taken from a law (decide / lr-law `decision` output). */
export interface Decision {
  name: string;
  value: number;
  source: 'law' | 'fallback';
  law_value: number | null;
  identified: boolean;
  fallback_rule: string;
  clamped: { from: number; to: number; rule: string } | null;
  reasons: string[];
  warnings: string[];
  passes?: number;
}

export interface LoadedFit { path: string; fit: FitResult }

export interface TrainRecord {
  step: number;
  samples?: number;
  loss?: number;
  mse?: number;
  l0?: number;
  fvu?: number;
  dead_frac?: number;
  lr?: number;
  lambda?: number;
}

export type EvalRecord = Record<string, number | string | boolean | null | undefined>;

export interface LoadedRun {
  path: string;
  /** The config line's instance name, else the file's folder name. */
  label: string;
  config: Record<string, unknown> | null;
  train: TrainRecord[];
  eval: EvalRecord | null;
  /** The `run` record: data (train_rows, unique_samples, passes) and sparsity (target_l0, lambda_end, resampled). */
  run: EvalRecord | null;
}

export interface BudgetRow { item: string; flops: number | null; hours?: number | null; note?: string }
export interface Budget { table: BudgetRow[]; warnings?: string[] }

export interface Versions {
  node: string;
  package: string;
  tfjs: string | null;
}

export interface ReportParams {
  title: string;
  budget?: Budget;
  loss_fits?: Array<string | string[]>;
  lr_fit?: string;
  runs?: Array<string | string[]>;
  final_run?: string;
  final_eval?: Record<string, unknown>;
  decisions?: Decision[];
  dead_warning?: number;
  notes?: string;
}

export interface ReportInputs {
  title: string;
  notes: string | null;
  budget: Budget | null;
  lossFits: LoadedFit[];
  lrFit: LoadedFit | null;
  runs: LoadedRun[];
  finalRun: LoadedRun | null;
  /** params.final_eval, else the final run's eval line. */
  finalEval: EvalRecord | null;
  decisions: Decision[];
  /** Dead-latent fraction above which a run is flagged. */
  deadWarning: number;
  /** From the final run's config, else the first run that names one. */
  backend: string | null;
  provenance: Provenance | null;
  versions: Versions;
}

// ---------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------

export function loadInputs(params: ReportParams, pipelineDir: string, provenance?: Provenance): ReportInputs {
  const at = (p: string) => (isAbsolute(p) ? p : resolve(pipelineDir, p));
  const lossFits = flattenPaths(params.loss_fits).map((p) => loadFit(at(p)));
  const lrFit = params.lr_fit ? loadFit(at(params.lr_fit)) : null;
  const runs = flattenPaths(params.runs).map((p) => loadRun(at(p)));
  const finalRun = params.final_run ? loadRun(at(params.final_run)) : null;
  const finalEval = params.final_eval ? toEvalRecord(params.final_eval, 'param final_eval') : finalRun?.eval ?? null;
  return {
    title: params.title,
    notes: params.notes ?? null,
    budget: params.budget ?? null,
    lossFits,
    lrFit,
    runs,
    finalRun,
    finalEval,
    decisions: params.decisions ?? [],
    deadWarning: params.dead_warning ?? 0.1,
    backend: findBackend(finalRun, runs),
    provenance: provenance ?? null,
    versions: readVersions(),
  };
}

/** A matrix stage's output is a list, so `runs: [a-list, b-list]` is a list of lists: flatten. */
export function flattenPaths(list: Array<string | string[]> | undefined): string[] {
  return (list ?? []).flat();
}

/** Input files the runtime must digest: the relative (user) paths; absolute ones are upstream outputs. */
export function relativeInputPaths(params: ReportParams): string[] {
  const all = [
    ...flattenPaths(params.loss_fits),
    ...(params.lr_fit ? [params.lr_fit] : []),
    ...flattenPaths(params.runs),
    ...(params.final_run ? [params.final_run] : []),
  ];
  return all.filter((p) => !isAbsolute(p));
}

// ---------------------------------------------------------------------------------------
// fit.json
// ---------------------------------------------------------------------------------------

export function loadFit(path: string): LoadedFit {
  const raw = parseJsonFile(path);
  const where = `fit file ${path}`;
  if (!isObject(raw)) throw new Error(`report: ${where}: expected a JSON object`);
  requireField(raw, 'law', 'string', where);
  requireField(raw, 'params', 'object', where);
  if (!Array.isArray(raw.points)) throw new Error(`report: ${where}: field "points" must be an array`);
  raw.points.forEach((p, i) => checkPoint(p, `${where}: points[${i}]`));
  for (const field of ['curve', 'predictions', 'warnings', 'residuals'] as const) {
    if (raw[field] !== undefined && !Array.isArray(raw[field])) {
      throw new Error(`report: ${where}: field "${field}" must be an array when present`);
    }
  }
  (raw.curve as unknown[] | undefined)?.forEach((c, i) => checkCurve(c, `${where}: curve[${i}]`));
  (raw.predictions as unknown[] | undefined)?.forEach((c, i) => checkPrediction(c, `${where}: predictions[${i}]`));
  return { path, fit: raw as unknown as FitResult };
}

function checkPoint(p: unknown, where: string): void {
  if (!isObject(p)) throw new Error(`report: ${where}: expected an object`);
  // A point left out for having no value (a diverged run) has y null.
  if (typeof p.y !== 'number' && !(p.y === null && p.kept === false)) {
    throw new Error(`report: ${where}: "y" must be a number, got ${JSON.stringify(p.y)}`);
  }
  const hasX = typeof p.x === 'number';
  const hasND = typeof p.N === 'number' && typeof p.D === 'number';
  if (!hasX && !hasND) throw new Error(`report: ${where}: needs a numeric "x" (or "N" and "D")`);
  if (typeof p.kept !== 'boolean') throw new Error(`report: ${where}: "kept" must be true or false`);
}

function checkXY(p: unknown, where: string): void {
  if (!isObject(p) || typeof p.x !== 'number' || typeof p.y !== 'number') {
    throw new Error(`report: ${where}: expected {"x": number, "y": number, ...}, got ${JSON.stringify(p)}`);
  }
}

/** A curve row {x, y, lo, hi}, or a chinchilla curve {N, points: [{x, y, lo, hi}]}. */
function checkCurve(c: unknown, where: string): void {
  if (isObject(c) && Array.isArray(c.points)) {
    if (typeof c.N !== 'number') throw new Error(`report: ${where}: a curve with "points" needs a numeric "N"`);
    c.points.forEach((q, j) => checkXY(q, `${where}.points[${j}]`));
  } else checkXY(c, where);
}

function checkPrediction(p: unknown, where: string): void {
  const ok = isObject(p) && typeof p.y === 'number' && (typeof p.x === 'number' || (typeof p.N === 'number' && typeof p.D === 'number'));
  if (!ok) throw new Error(`report: ${where}: expected {"x" (or "N" and "D"): number, "y": number, ...}, got ${JSON.stringify(p)}`);
}

// ---------------------------------------------------------------------------------------
// metrics.jsonl
// ---------------------------------------------------------------------------------------

export function loadRun(path: string): LoadedRun {
  if (!existsSync(path)) throw new Error(`report: metrics file not found: ${path}`);
  const lines = readFileSync(path, 'utf8').split('\n');
  let config: Record<string, unknown> | null = null;
  const train: TrainRecord[] = [];
  let evalRec: EvalRecord | null = null;
  let runRec: EvalRecord | null = null;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `metrics file ${path} line ${i + 1}`;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new Error(`report: ${where}: not JSON (${(e as Error).message})`);
    }
    if (!isObject(rec)) throw new Error(`report: ${where}: expected a JSON object`);
    if (rec.type === 'config') config = rec;
    else if (rec.type === 'train') train.push(toTrainRecord(rec, where));
    else if (rec.type === 'eval') evalRec = toEvalRecord(rec, where);
    else if (rec.type === 'run') runRec = toEvalRecord(rec, where);
    // Other record types (added by later versions of train-sae) are not the report's business.
  });
  const cfg = config as Record<string, unknown> | null;
  const label = typeof cfg?.instance === 'string' ? cfg.instance : basename(dirname(path));
  return { path, label, config: cfg, train, eval: evalRec, run: runRec };
}

function toTrainRecord(rec: Record<string, unknown>, where: string): TrainRecord {
  if (typeof rec.step !== 'number') throw new Error(`report: ${where}: "step" must be a number`);
  return rec as unknown as TrainRecord;
}

function toEvalRecord(rec: Record<string, unknown>, where: string): EvalRecord {
  const out: EvalRecord = {};
  for (const [k, v] of Object.entries(rec)) {
    if (k === 'type') continue;
    if (v !== null && typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') {
      throw new Error(`report: ${where}: eval field "${k}" must be a number, string, boolean or null, got ${JSON.stringify(v)}`);
    }
    out[k] = v;
  }
  return out;
}

/** The final run's engine (and device and threads, when the config records them), else the first run's. */
function findBackend(finalRun: LoadedRun | null, runs: LoadedRun[]): string | null {
  for (const run of [finalRun, ...runs]) {
    const b = run?.config?.backend;
    const device = run?.config?.device;
    const threads = run?.config?.threads;
    if (typeof b !== 'string') continue;
    if (typeof device !== 'string') return b;
    return typeof threads === 'number' ? `${b} on ${device}, ${threads} thread${threads === 1 ? '' : 's'}` : `${b} on ${device}`;
  }
  return null;
}

// ---------------------------------------------------------------------------------------
// Versions: node, this package, tfjs
// ---------------------------------------------------------------------------------------

export function readVersions(): Versions {
  const pkgPath = findPackageJson(dirname(fileURLToPath(import.meta.url)));
  const pkg = pkgPath ? (JSON.parse(readFileSync(pkgPath, 'utf8')) as { name?: string; version?: string }) : {};
  return {
    node: process.version,
    package: `${pkg.name ?? 'unknown'} ${pkg.version ?? '?'}`,
    tfjs: pkgPath ? dependencyVersion(pkgPath, '@tensorflow/tfjs') : null,
  };
}

function findPackageJson(from: string): string | null {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) return null;
  }
}

function dependencyVersion(fromPackageJson: string, name: string): string | null {
  try {
    const req = createRequire(fromPackageJson);
    return (req(`${name}/package.json`) as { version: string }).version;
  } catch {
    return null; // not installed: the report says "not installed" rather than failing
  }
}

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

function parseJsonFile(path: string): unknown {
  if (!existsSync(path)) throw new Error(`report: file not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`report: ${path}: not valid JSON (${(e as Error).message})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireField(obj: Record<string, unknown>, field: string, type: 'string' | 'object', where: string): void {
  const v = obj[field];
  const ok = type === 'object' ? isObject(v) : typeof v === type;
  if (!ok) throw new Error(`report: ${where}: field "${field}" must be a ${type}, got ${JSON.stringify(v)}`);
}
