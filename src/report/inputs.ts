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
import { FitFile, type CurveRow, type DecisionRecord, type FitPointRecord } from '../formats/fit.js';
import { MetricsConfig, MetricsEval, MetricsRun, MetricsTrain, type RunRecord } from '../formats/metrics.js';
import { readFormat } from '../formats/read.js';

// ---------------------------------------------------------------------------------------
// Types (the files' shapes are in src/formats/; these are what the report makes of them)
// ---------------------------------------------------------------------------------------

export interface LoadedFit {
  path: string;
  fit: FitFile;
}

/** An eval line's fields (or the `final_eval` param's): scalars by name. */
export type EvalRecord = Record<string, number | string | boolean | null | undefined>;

export interface LoadedRun {
  path: string;
  /** The config line's instance name, else the file's folder name. */
  label: string;
  config: MetricsConfig | null;
  train: MetricsTrain[];
  eval: EvalRecord | null;
  /** The `run` record: data (train_rows, unique_samples, passes) and sparsity (target_l0, lambda_end, resampled). */
  run: RunRecord | null;
}

export interface BudgetRow {
  item: string;
  flops: number | null;
  hours?: number | null;
  note?: string;
}
export interface Budget {
  table: BudgetRow[];
  warnings?: string[];
}

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
  decisions?: DecisionRecord[];
  dead_warning?: number;
  recovery_warning?: number;
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
  decisions: DecisionRecord[];
  /** Dead-latent fraction above which a run is flagged. */
  deadWarning: number;
  /** Fraction of true features recovered below which the final SAE is flagged (synthetic data). */
  recoveryWarning: number;
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
  const finalEval = params.final_eval ? toEvalRecord(params.final_eval, 'param final_eval') : (finalRun?.eval ?? null);
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
    recoveryWarning: params.recovery_warning ?? 0.9,
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
  const where = `report: fit file ${path}`;
  const fit = readFormat(FitFile, parseJsonFile(path), where);
  fit.points.forEach((p, i) => checkPoint(p, `${where}: points[${i}]`));
  fit.curve?.forEach((c, i) => checkCurve(c, `${where}: curve[${i}]`));
  fit.predictions?.forEach((p, i) => checkHasX(p, `${where}: predictions[${i}]`));
  return { path, fit };
}

/** What the schema cannot say: a point has x (or N and D); only a point left out may lack y. */
function checkPoint(p: FitPointRecord, where: string): void {
  checkHasX(p, where);
  if (p.y === null && p.kept) throw new Error(`${where}: "y" must be a number for a kept point, got null`);
}

function checkHasX(p: { x?: number; N?: number; D?: number }, where: string): void {
  if (p.x === undefined && (p.N === undefined || p.D === undefined))
    throw new Error(`${where}: needs a numeric "x" (or "N" and "D")`);
}

/** A curve row {x, y, lo, hi}, or a chinchilla curve {N, points: [{x, y, lo, hi}]}. */
function checkCurve(c: CurveRow, where: string): void {
  if (c.points) {
    if (c.N === undefined) throw new Error(`${where}: a curve with "points" needs a numeric "N"`);
  } else if (c.x === undefined || c.y === undefined) {
    throw new Error(`${where}: expected {"x": number, "y": number, ...}, got ${JSON.stringify(c)}`);
  }
}

// ---------------------------------------------------------------------------------------
// metrics.jsonl
// ---------------------------------------------------------------------------------------

export function loadRun(path: string): LoadedRun {
  if (!existsSync(path)) throw new Error(`report: metrics file not found: ${path}`);
  const run: LoadedRun = { path, label: basename(dirname(path)), config: null, train: [], eval: null, run: null };
  readFileSync(path, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (line.trim() === '') return;
      const where = `report: metrics file ${path} line ${i + 1}`;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        throw new Error(`${where}: not JSON (${(e as Error).message})`);
      }
      const type = (rec as { type?: unknown } | null)?.type;
      // Other record types (added by later versions of train-sae) are not the report's business.
      if (type === 'config') run.config = readFormat(MetricsConfig, rec, where);
      else if (type === 'train') run.train.push(readFormat(MetricsTrain, rec, where));
      else if (type === 'eval') run.eval = withoutType(readFormat(MetricsEval, rec, where));
      else if (type === 'run') run.run = withoutType(readFormat(MetricsRun, rec, where));
      else if (typeof rec !== 'object' || rec === null || Array.isArray(rec))
        throw new Error(`${where}: expected a JSON object`);
    });
  if (typeof run.config?.instance === 'string') run.label = run.config.instance;
  return run;
}

function withoutType<T extends { type: string }>(rec: T): Omit<T, 'type'> {
  const { type: _, ...rest } = rec;
  return rest;
}

function toEvalRecord(rec: Record<string, unknown>, where: string): EvalRecord {
  const out: EvalRecord = {};
  for (const [k, v] of Object.entries(rec)) {
    if (v !== null && typeof v !== 'number' && typeof v !== 'string' && typeof v !== 'boolean') {
      throw new Error(
        `report: ${where}: eval field "${k}" must be a number, string, boolean or null, got ${JSON.stringify(v)}`,
      );
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
    return typeof threads === 'number'
      ? `${b} on ${device}, ${threads} thread${threads === 1 ? '' : 's'}`
      : `${b} on ${device}`;
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
