/**
 * The Slurm profile: how this cluster wants jobs submitted (partitions, account, time limits,
 * setup lines, retries). It lives in its own YAML file (`--profile FILE`), like Snakemake's
 * profiles, so that a pipeline never changes to run on a cluster, and it is never part of a
 * cache key: a Slurm run and a local run of one pipeline compute the same keys.
 */
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { PipelineError, PipelineErrors } from '../errors.js';
import { schemaErrors, validator } from '../validate.js';
import { parseYamlText, Positions } from '../yaml-source.js';
import { QUERY_TIMEOUT_S } from './query.js';

/** `--time` forms Slurm accepts: minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S. */
const TIME = '^(\\d+|\\d+:\\d{1,2}|\\d+:\\d{1,2}:\\d{1,2}|\\d+-\\d+(:\\d{1,2}){0,2})$';
const Time = Type.String({ pattern: TIME, description: 'a Slurm time limit: MINUTES, H:M:S or D-H:M:S' });
/** `--mem` forms: a number with an optional K/M/G/T unit (Slurm's default unit is M). */
const Mem = Type.String({ pattern: '^\\d+[KMGT]?$', description: 'memory such as 4G or 500M' });

const StageOverride = Type.Object(
  {
    partition: Type.Optional(Type.String({ minLength: 1 })),
    time: Type.Optional(Time),
    mem: Type.Optional(Mem),
    cpus: Type.Optional(Type.Integer({ minimum: 1 })),
    gpus: Type.Optional(Type.Integer({ minimum: 0 })),
    sbatch_args: Type.Optional(Type.Array(Type.String())),
    local: Type.Optional(Type.Boolean({ description: 'run this stage on the submitting machine, not as a job' })),
  },
  { additionalProperties: false },
);

const Retries = Type.Object(
  {
    TIMEOUT: Type.Integer({ minimum: 0, default: 2, description: 'also counts the time-limit warning signal' }),
    NODE_FAIL: Type.Integer({ minimum: 0, default: 2 }),
    PREEMPTED: Type.Integer({ minimum: 0, default: 5 }),
  },
  { additionalProperties: false, default: {} },
);

export const SlurmProfileSchema = Type.Object(
  {
    partition: Type.Optional(
      Type.String({ minLength: 1, description: 'partition of CPU jobs (default: the cluster default)' }),
    ),
    gpu_partition: Type.Optional(
      Type.String({ minLength: 1, description: 'partition of jobs that ask for GPUs (default: partition)' }),
    ),
    account: Type.Optional(Type.String({ minLength: 1 })),
    qos: Type.Optional(Type.String({ minLength: 1 })),
    // The default time limit of a job; the description is what an invalid value is told it is not.
    time: Type.String({
      pattern: TIME,
      default: '1:00:00',
      description: 'a Slurm time limit: MINUTES, H:M:S or D-H:M:S',
    }),
    mem: Type.Optional(Mem),
    setup: Type.Array(Type.String(), {
      default: [],
      description: 'shell lines run before the stage (module load, conda activate)',
    }),
    sbatch_args: Type.Array(Type.String(), { default: [], description: 'extra sbatch arguments for every job' }),
    poll_interval: Type.Number({ exclusiveMinimum: 0, default: 30, description: 'seconds between two queue queries' }),
    query_timeout: Type.Number({
      exclusiveMinimum: 0,
      default: QUERY_TIMEOUT_S,
      description: 'seconds an squeue or sacct query may take; one that takes longer is killed and counts as failed',
    }),
    max_jobs: Type.Integer({ minimum: 1, default: 100, description: 'most jobs of this run in the queue at once' }),
    warning_seconds: Type.Integer({
      minimum: 0,
      default: 120,
      description: 'seconds before the time limit when the job is told to checkpoint and stop',
    }),
    retries: Retries,
    node: Type.Optional(
      Type.String({ minLength: 1, description: 'node.js executable on the compute nodes (default: this one)' }),
    ),
    local: Type.Array(Type.String(), {
      default: [],
      description: 'stage ids or stage types that run on the submitting machine',
    }),
    stages: Type.Record(Type.String(), StageOverride, {
      default: {},
      description: 'stage id -> resources and options for its jobs',
    }),
  },
  { additionalProperties: false },
);

export type SlurmProfile = Static<typeof SlurmProfileSchema>;
export type StageOverride = Static<typeof StageOverride>;
/** End states that lead to a resubmission (while the retries last). */
export type RetryState = keyof SlurmProfile['retries'];

/** A profile from YAML text; `file` names it in errors (file:line:col and the field). */
export function parseProfile(text: string, file: string): SlurmProfile {
  const doc = parseYamlText(text, file);
  const data = doc.data === null || doc.data === undefined ? {} : structuredClone(doc.data);
  if (typeof data !== 'object' || Array.isArray(data))
    throw new PipelineError(`Slurm profile ${file}: expected a mapping of settings`, { file, line: 1, col: 1 });
  const validate = validator(SlurmProfileSchema);
  if (!validate(data))
    throw new PipelineErrors(schemaErrors(validate.errors ?? [], new Positions([doc]), '', `Slurm profile ${file}`));
  return data as SlurmProfile;
}

export function readProfile(file: string | undefined): SlurmProfile {
  if (!file) return parseProfile('{}', '(default profile)');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new PipelineError(`cannot read the Slurm profile ${file}: ${(e as Error).message}`);
  }
  return parseProfile(text, file);
}

/** Whether a stage (by id or type) runs on the submitting machine rather than as a job. */
export function runsLocally(profile: SlurmProfile, stageId: string, stageType: string): boolean {
  return profile.stages[stageId]?.local ?? (profile.local.includes(stageId) || profile.local.includes(stageType));
}
