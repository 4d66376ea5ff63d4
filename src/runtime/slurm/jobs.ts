/**
 * Jobs of a run in progress elsewhere, for `pipeline status` and `show`: the job records in
 * the instances' work folders, as Slurm sees them now (one squeue query for all of them, one
 * sacct query for those that have left the queue: how each ended, as a Snakemake or Nextflow
 * user would expect to be told).
 */
import { jobDirOf, progressFileOf, readJobRecord, type JobRecord } from './executor.js';
import { Accounting } from './accounting.js';
import { describeProgress } from '../progress.js';
import { readProgressFile, type ProgressFile } from '../progress-file.js';
import { lookUpJobs } from './query.js';
import { isActive, isWaiting, type QueueView } from './state.js';

export interface JobInProgress {
  record: JobRecord;
  /** queued / running / ended (no runner collected it yet) / unknown (squeue did not answer). */
  label: 'queued' | 'running' | 'ended' | 'unknown';
  /** "Slurm job 12 running on node07: 40%  step 400/1000", "Slurm job 13 ended TIMEOUT on node07; ...". */
  text: string;
  /** Slurm's state: squeue's while it lists the job, else accounting's end state. */
  state?: string;
  node?: string;
  reason?: string;
}

/** The recorded jobs of the given work folders (by cache key), as Slurm sees them now. */
export async function jobsInProgress(workDirs: Map<string, string>): Promise<Map<string, JobInProgress>> {
  const records = new Map<string, JobRecord>();
  for (const [key, dir] of workDirs) {
    const r = readJobRecord(dir);
    if (r && r.key === key) records.set(key, r);
  }
  const out = new Map<string, JobInProgress>();
  if (!records.size) return out;
  // Status prints no accounting notes: a job whose end it cannot tell says why on its line.
  const accounting = new Accounting(() => {});
  const seen = await lookUpJobs([...records.values()], accounting);
  for (const [key, r] of records) {
    if ('squeueError' in seen) {
      out.set(key, { record: r, label: 'unknown', text: `Slurm job ${r.jobId} (squeue: ${seen.squeueError})` });
      continue;
    }
    const progress = readProgressFile(progressFileOf(jobDirOf(workDirs.get(key)!)));
    const unknownEnd = !seen.accountingAnswered
      ? 'sacct did not answer'
      : accounting.available
        ? 'accounting does not know it'
        : 'no accounting on this cluster';
    out.set(key, jobStatus(r, seen.view(r.jobId, r.name), progress, unknownEnd));
  }
  return out;
}

/**
 * One job's line: queued with Slurm's reason, running with the stage's latest report (as the
 * live display describes it), or ended with its end state (squeue's, or accounting's once
 * squeue has forgotten the job). `view` undefined: Slurm knows the job no more, `unknownEnd`
 * says why its end is not known.
 */
export function jobStatus(
  r: JobRecord,
  view: QueueView | undefined,
  progress: ProgressFile | undefined,
  unknownEnd = 'Slurm no longer knows it',
): JobInProgress {
  const job = `Slurm job ${r.jobId}`;
  if (!view)
    return {
      record: r,
      label: 'ended',
      text: `${job} has left the queue, how it ended is unknown (${unknownEnd}); the next run collects it`,
    };
  const seen = {
    record: r,
    state: view.state,
    ...(view.node ? { node: view.node } : {}),
    ...(view.reason ? { reason: view.reason } : {}),
  };
  const reason = view.reason ? ` (${view.reason})` : '';
  const where = view.node ? ` on ${view.node}` : '';
  if (isWaiting(view.state))
    return { ...seen, label: 'queued', text: `${job} ${view.state === 'PENDING' ? 'queued' : view.state}${reason}` };
  if (isActive(view.state)) {
    const report = progress ? `: ${describeProgress(progress.progress)}` : '';
    const state = view.state === 'RUNNING' ? 'running' : view.state;
    return { ...seen, label: 'running', text: `${job} ${state}${where}${report}` };
  }
  return { ...seen, label: 'ended', text: `${job} ended ${view.state}${reason}${where}; the next run collects it` };
}
