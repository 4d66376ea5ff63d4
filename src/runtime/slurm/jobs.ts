/**
 * Jobs of a run in progress elsewhere, for `pipeline status` and `show`: the job records in
 * the instances' work folders, as Slurm sees them now (one squeue query for all of them, one
 * sacct query for those that have left the queue: how each ended, as a Snakemake or Nextflow
 * user would expect to be told, and what the next run will do with it).
 */
import {
  jobDirOf,
  jobRecordFile,
  readJobFiles,
  readJobRecord,
  QUERY_TRIES,
  type JobFiles,
  type JobRecord,
} from './watch.js';
import { unwatchable } from './adopt.js';
import { Accounting } from './accounting.js';
import { describeProgress } from '../progress.js';
import { lookUpJobs, QUERY_TIMEOUT_S } from './query.js';
import { decide, describeJob, phaseOf, type Decision, type Phase, type QueueView } from './state.js';

/**
 * What the next run does with a recorded job: wait for it, collect its outputs, submit it again
 * (a local run: run the stage here), report the stage failed, refuse the entry (nothing here can
 * watch the job), or ask Slurm again before it decides.
 */
export type NextAction = 'wait' | 'collect' | 'resubmit' | 'fail' | 'refuse' | 'ask';

export interface JobInProgress {
  record: JobRecord;
  next: { action: NextAction; text: string };
  /** Its phase (ended: no runner collected it yet), or unknown: squeue did not answer. */
  label: Phase | 'unknown';
  /**
   * "Slurm job 12 running on node07: 40%  step 400/1000", "Slurm job 13 ended TIMEOUT on node07;
   * the next run submits it again, if the profile allows another TIMEOUT retry (0 used)".
   */
  text: string;
  /** Slurm's state: squeue's while it lists the job, else accounting's end state. */
  state?: string;
  node?: string;
  reason?: string;
}

/**
 * The recorded jobs of the given work folders (by cache key), as Slurm sees them now; each query
 * killed after `queryTimeoutMs` (profile query_timeout).
 */
export async function jobsInProgress(
  workDirs: Map<string, string>,
  queryTimeoutMs = QUERY_TIMEOUT_S * 1000,
): Promise<Map<string, JobInProgress>> {
  const records = new Map<string, JobRecord>();
  for (const [key, dir] of workDirs) {
    const r = readJobRecord(dir);
    if (r && r.key === key) records.set(key, r);
  }
  const out = new Map<string, JobInProgress>();
  if (!records.size) return out;
  // Status prints no accounting notes: a job whose end it cannot tell says why on its line.
  const accounting = new Accounting(() => {}, queryTimeoutMs);
  const seen = await lookUpJobs([...records.values()], accounting, queryTimeoutMs);
  for (const [key, r] of records) {
    if ('squeueError' in seen) {
      out.set(key, unanswered(r, workDirs.get(key)!, seen));
      continue;
    }
    const unknownEnd: UnknownEnd = {
      why:
        seen.accountingError !== undefined
          ? 'sacct did not answer'
          : accounting.available
            ? 'accounting does not know it'
            : 'no accounting on this cluster',
      decidable: seen.accountingError === undefined,
    };
    const files = readJobFiles(jobDirOf(workDirs.get(key)!));
    out.set(key, jobStatus(r, seen.view(r.jobId, r.name), files, unknownEnd));
  }
  return out;
}

/**
 * A job squeue did not tell of. Without squeue: what its files say, else the refusal a run here
 * makes (adopt.ts). With an squeue that failed: the next run asks again.
 */
function unanswered(
  r: JobRecord,
  workDir: string,
  seen: { squeueError: string; notInstalled: boolean },
): JobInProgress {
  const job = (next: JobInProgress['next'], text: string): JobInProgress => ({
    record: r,
    label: 'unknown',
    next,
    text,
  });
  if (!seen.notInstalled) {
    const next = {
      action: 'ask' as const,
      text: `the next run asks squeue again (and leaves the job to a later run after ${QUERY_TRIES} failed queries in a row)`,
    };
    return job(next, `Slurm job ${r.jobId} (squeue: ${seen.squeueError}); ${next.text}`);
  }
  if (readJobFiles(jobDirOf(workDir)).result?.ok) {
    const next = { action: 'collect' as const, text: 'the next run collects its outputs' };
    return job(next, `Slurm job ${r.jobId} wrote its result (squeue is not installed here to tell more); ${next.text}`);
  }
  const refusal = unwatchable(r.jobId, jobRecordFile(workDir));
  return job({ action: 'refuse', text: `the next run here refuses the entry: ${refusal}` }, refusal);
}

/** Why nobody can tell how a job that has left the queue ended. */
export interface UnknownEnd {
  why: string;
  /** False while sacct does not answer: a run asks it again before it decides anything. */
  decidable: boolean;
}

/**
 * One job's line: queued or running as the live display words the job (with the stage's latest
 * report), or ended with its end state (squeue's, or accounting's once squeue has forgotten the
 * job) and what the next run will do about it. `view` undefined: Slurm knows the job no more.
 */
export function jobStatus(
  r: JobRecord,
  view: QueueView | undefined,
  files: JobFiles = { warned: false },
  unknownEnd: UnknownEnd = { why: 'Slurm no longer knows it', decidable: true },
): JobInProgress {
  const decision = decide(view, files.result, files.warned);
  const next = nextRun(r, decision, view, files, unknownEnd.decidable);
  if (!view)
    return {
      record: r,
      next,
      label: 'ended',
      text: `Slurm job ${r.jobId} has left the queue, how it ended is unknown (${unknownEnd.why}); ${next.text}`,
    };
  const seen = {
    record: r,
    next,
    state: view.state,
    ...(view.node ? { node: view.node } : {}),
    ...(view.reason ? { reason: view.reason } : {}),
  };
  const label = phaseOf(view.state);
  const report = label === 'running' && files.progress ? `: ${describeProgress(files.progress.progress)}` : '';
  // A job still queued says what next only when Slurm will never start it (the run cancels it).
  const then = label === 'ended' || decision.kind === 'failed' ? `; ${next.text}` : '';
  return { ...seen, label, text: `${describeJob(view)}${report}${then}` };
}

/**
 * What the next run does with the job: what the runner would decide (decide()) on the same
 * view and files, in words. The retries left depend on the profile, which status does not read.
 */
function nextRun(
  r: JobRecord,
  d: Decision,
  view: QueueView | undefined,
  files: JobFiles,
  decidable: boolean,
): JobInProgress['next'] {
  if (d.kind === 'done') return { action: 'collect', text: 'the next run collects its outputs' };
  if (!decidable) return { action: 'ask', text: 'the next run asks sacct again before it decides' };
  switch (d.kind) {
    case 'queued':
    case 'running':
      return { action: 'wait', text: 'the next run waits for it' };
    case 'retry': {
      // The state alone does not say why when the retry is counted under another one.
      const why = view?.state === d.state ? '' : ` (${d.detail})`;
      const used = r.retriesUsed[d.state] ?? 0;
      // A local run submits nothing: it runs the stage itself (adopt.ts).
      const text =
        `the next Slurm run submits it again${why} if the profile allows another ${d.state} retry (${used} used); ` +
        'a local run runs the stage here';
      return { action: 'resubmit', text };
    }
    case 'failed': {
      // The stage's own message, or why Slurm will never start the job; the others repeat the state.
      const why = files.result || d.cancel ? `: ${d.message.split('\n')[0]}` : '';
      return {
        action: 'fail',
        text: `the next run ${d.cancel ? 'cancels it and ' : ''}reports the stage failed${why}`,
      };
    }
  }
}
