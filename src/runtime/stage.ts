/**
 * The stage contract: what every stage type declares and what the runtime gives it.
 *
 * The runtime knows nothing of SAEs. A stage type is a name, a version, a JSON Schema
 * for its `with:` params (TypeBox, so the TypeScript type of the params is derived from
 * the schema, never written twice), the outputs it promises, and `run(ctx)`.
 */
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Static, TObject } from '@sinclair/typebox';
import type { SpawnRequest } from './launch.js';
import type { Progress } from '../util/progress.js';
import type { Provenance } from '../util/provenance.js';

/** A JSON value: what a stage's value outputs and resolved params are made of. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/**
 * One declared output.
 * - `value`: a small JSON value returned by run() (a norm, fitted exponents).
 * - `file` / `dir`: run() returns a path relative to ctx.outDir; downstream stages receive
 *   the absolute path of the committed copy, and their cache key uses its content digest.
 */
export interface OutputDecl {
  kind: 'value' | 'file' | 'dir';
  description: string;
}

export interface StageContext<P> {
  /** Validated params: references resolved, schema defaults applied. */
  params: P;
  /** Name of this stage instance in the pipeline, e.g. `small[d_sae=4096,lr=1e-4]`. */
  instance: string;
  /** Empty folder that only this run writes; committed atomically to the cache on success. */
  outDir: string;
  /**
   * Folder that survives a crash or kill of this run and is reused by the next attempt
   * of the same cache key (checkpoints, partial downloads). Removed after a successful commit.
   */
  workDir: string;
  /** Folder of the pipeline file, for resolving user-relative paths. */
  pipelineDir: string;
  log(message: string): void;
  progress(p: Progress): void;
  /** Aborted on Ctrl-C / SIGTERM: stop promptly, leave workDir consistent. */
  signal: AbortSignal;
  /**
   * Starts a process for the stage (a stage never calls child_process itself): in its own
   * process group, ended with its tree when `signal` aborts or the runner exits in an emergency.
   */
  spawn(command: string, args: string[], request: SpawnRequest): ChildProcess;
  /** Extra environment for the stage (e.g. CUDA_VISIBLE_DEVICES for a `gpu` resource). */
  env: Record<string, string>;
  /** Where this run comes from, for reports: the pipeline file and every upstream entry. */
  provenance?: Provenance;
}

/** Values returned by run(): one per declared output (paths relative to outDir for file/dir). */
export type StageOutputs = Record<string, Json>;

export interface StageType<S extends TObject = TObject> {
  /** The name used in `uses:`. */
  name: string;
  /** Bump when the stage's semantics change: it invalidates every cached result of the type. */
  version: string;
  description: string;
  params: S;
  outputs: Record<string, OutputDecl>;
  /** Run in its own child process (crash/OOM isolation). Light stages run in the runner. */
  heavy?: boolean;
  /** Named resources one instance needs by default, e.g. { gpu: 1 }. */
  resources?: Record<string, number>;
  /**
   * Input files/folders this stage reads that are not upstream outputs (e.g. a CSV, a local
   * dataset folder): paths relative to the pipeline folder. The runtime digests them into the key.
   */
  inputFiles?(params: Static<S>): string[];
  /**
   * Outputs that depend on the params (e.g. the `shell` stage, whose `outputs:` param names
   * them), merged over `outputs`. Called at load time with the `with:` params as written
   * (params and matrix values substituted, defaults not yet applied; fields that reference
   * other stages still hold the reference text), so it must only read literal fields.
   */
  dynamicOutputs?(params: Static<S>): Record<string, OutputDecl>;
  /**
   * Checks across fields that a schema cannot say (two options that do not work together):
   * one message per problem, naming the fields. Called at load time on the `with:` params as
   * written (as dynamicOutputs: a field that references another stage still holds the
   * reference text, so check only literal values); the stage should apply it again at run time.
   */
  checkParams?(params: Static<S>): string[];
  /**
   * A string param that bash interprets (the `shell` stage's command). References in it are
   * never pasted into its text: each becomes a variable reference, and the variable is added,
   * set to the reference's value, to the record param named `env` (see shell-refs.ts).
   */
  shellCommand?: { field: string; env: string };
  run(ctx: StageContext<Static<S>>): Promise<StageOutputs>;
  /**
   * The module that defines the type (set by defineStage): its code, and the code it imports,
   * are part of every cache key of the type (see code.ts).
   */
  codeFile?: string;
}

/**
 * Keeps the params type tied to the schema, and records which module defines the stage type:
 * the caller's file, read from the call stack, so that no stage has to say it.
 */
export function defineStage<S extends TObject>(stage: StageType<S>): StageType<S> {
  return { ...stage, codeFile: stage.codeFile ?? callerFile() };
}

/** The file of the function that called defineStage. */
function callerFile(): string | undefined {
  const saved = Error.prepareStackTrace;
  try {
    Error.prepareStackTrace = (_e, frames) => frames;
    const frames = new Error().stack as unknown as NodeJS.CallSite[];
    const name = frames[2]?.getFileName();
    return name?.startsWith('file:') ? fileURLToPath(name) : (name ?? undefined);
  } finally {
    Error.prepareStackTrace = saved;
  }
}
