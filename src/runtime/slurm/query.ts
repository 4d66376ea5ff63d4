/**
 * What Slurm knows of some jobs now, for the runner's poll and for `pipeline status` alike:
 * one squeue query for all of them, and one sacct query for those squeue no longer lists.
 */
import type { Accounting } from './accounting.js';
import { parseSqueue, SQUEUE_FORMAT, viewOf, type QueueView } from './state.js';
import { runTool } from './tool.js';

/** Seconds one squeue or sacct query may take (profile query_timeout); a hung one counts as failed. */
export const QUERY_TIMEOUT_S = 30;

export interface Job {
  jobId: string;
  name: string;
}

export type Sighting =
  /** squeue did not answer: nothing is known, not even that the jobs are gone. */
  | { squeueError: string; notInstalled: boolean }
  | {
      /**
       * Why accounting did not answer (sacct failed), undefined when it did (no accounting at
       * all counts as an answer that knows nothing).
       */
      accountingError?: string;
      /**
       * The job's view: squeue's line while it lists the job, else accounting's; undefined when
       * neither knows it (or knows another job under that id: ids restart when a controller
       * starts afresh, so the name must match too).
       */
      view(jobId: string, name: string): QueueView | undefined;
    };

/** `accounting` asks sacct with its own timeout; `timeoutMs` bounds the squeue query. */
export async function lookUpJobs(
  jobs: Job[],
  accounting: Accounting,
  timeoutMs = QUERY_TIMEOUT_S * 1000,
): Promise<Sighting> {
  const ids = [...new Set(jobs.map((j) => j.jobId))];
  const answer = await runTool('squeue', ['-h', '-t', 'all', '-j', ids.join(','), '-o', SQUEUE_FORMAT], { timeoutMs });
  // With a single unknown id squeue fails with "Invalid job id"; with several it leaves them out.
  if (answer.code !== 0 && !/Invalid job id/i.test(answer.stderr))
    return { squeueError: answer.stderr.trim() || `exit ${answer.code}`, notInstalled: answer.code === 127 };
  const queued = parseSqueue(answer.stdout);
  const inQueue = (id: string, name: string) => (queued.get(id)?.name === name ? queued.get(id) : undefined);
  const left = [...new Set(jobs.filter((j) => !inQueue(j.jobId, j.name)).map((j) => j.jobId))];
  const ended = await accounting.endStates(left);
  const views = Array.isArray(ended) ? ended : [];
  return {
    accountingError: Array.isArray(ended) ? undefined : ended.error,
    view: (id, name) => inQueue(id, name) ?? viewOf(views, id, name),
  };
}
