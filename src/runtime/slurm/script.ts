/**
 * The batch script of one stage instance. Every sbatch option is a `#SBATCH` line of the
 * script file (no `--wrap`: no quoting through sbatch, and the file shows what was asked).
 * The job runs the same `pipeline exec SPEC` a local run starts, and that command writes the
 * result file the runner trusts over the scheduler.
 */
import type { SlurmProfile, StageOverride } from './profile.js';

export interface JobRequest {
  /** Job name: what `squeue` shows and what the runner checks before adopting a job. */
  name: string;
  instance: string;
  key: string;
  /** The job's working folder (the stage's work folder's `.slurm/`), created before sbatch. */
  jobDir: string;
  logFile: string;
  /** Written when the time-limit warning signal arrived: the stage was told to checkpoint. */
  warnedFile: string;
  /** argv of `pipeline exec` on the node. */
  command: string[];
  /** The stage's resources: gpu (count), cpu (count), mem (GB). */
  resources: Record<string, number>;
  override?: StageOverride;
  attempt: number;
}

/** Quotes a word for bash. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_/.,:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The sbatch options of a job, in the order the script lists them. */
export function sbatchOptions(profile: SlurmProfile, req: JobRequest): string[] {
  const o = req.override ?? {};
  const gpus = o.gpus ?? req.resources.gpu ?? 0;
  const cpus = o.cpus ?? req.resources.cpu;
  const mem = o.mem ?? (req.resources.mem !== undefined ? `${req.resources.mem}G` : profile.mem);
  const partition = o.partition ?? (gpus > 0 ? (profile.gpu_partition ?? profile.partition) : profile.partition);
  const opts = [
    `--job-name=${req.name}`,
    `--output=${req.logFile}`,
    // A requeued or retried job appends to its log instead of truncating it.
    '--open-mode=append',
    // Retries are the runner's: a job Slurm requeued by itself would run twice.
    '--no-requeue',
    `--chdir=${req.jobDir}`,
    `--time=${o.time ?? profile.time}`,
  ];
  if (profile.warning_seconds > 0) opts.push(`--signal=B:USR1@${profile.warning_seconds}`);
  if (partition) opts.push(`--partition=${partition}`);
  if (profile.account) opts.push(`--account=${profile.account}`);
  if (profile.qos) opts.push(`--qos=${profile.qos}`);
  if (gpus > 0) opts.push(`--gres=gpu:${gpus}`);
  if (cpus !== undefined) opts.push(`--cpus-per-task=${cpus}`);
  if (mem !== undefined) opts.push(`--mem=${mem}`);
  opts.push(...profile.sbatch_args, ...(o.sbatch_args ?? []));
  return opts;
}

export function batchScript(profile: SlurmProfile, req: JobRequest): string {
  const lines = [
    '#!/bin/bash',
    ...sbatchOptions(profile, req).map((o) => `#SBATCH ${o}`),
    `# Written by \`pipeline run\` for ${req.instance} (key ${req.key}), attempt ${req.attempt}.`,
    'echo "# slurm job $SLURM_JOB_ID on $(hostname), attempt ' + req.attempt + ', $(date -u +%FT%TZ)"',
  ];
  if (profile.setup.length) lines.push('set -e', ...profile.setup, 'set +e');
  lines.push(
    // The warning signal (B: to this shell) asks the stage to stop at a checkpoint; the runner
    // then resubmits it. TERM (scancel, the time limit) is passed on so the stage ends cleanly.
    `trap ': > ${shellQuote(req.warnedFile)}; kill -TERM "$child" 2>/dev/null' USR1`,
    `trap 'kill -TERM "$child" 2>/dev/null' TERM`,
    `${req.command.map(shellQuote).join(' ')} &`,
    'child=$!',
    // A trapped signal ends `wait` early: wait again until the stage has finished stopping.
    'while :; do wait "$child"; status=$?; kill -0 "$child" 2>/dev/null || break; done',
    'exit $status',
    '',
  );
  return lines.join('\n');
}
