/**
 * What the runner reads about its jobs and what it decides from it. One `squeue` answer for
 * all the run's jobs, parsed here; the decision for one job combines that answer with the
 * files the job writes (its result, the warning marker), and the files win: a result file
 * says how the stage ended whatever the scheduler's state.
 */
import type { Json } from '../stage.js';
import type { RetryState } from './profile.js';

/** Output format of the runner's squeue query: `-o` and how to split one line of it. */
export const SQUEUE_FORMAT = '%i|%T|%r|%N|%j';

/**
 * The same fields from sacct (`-P -o`), for jobs that have left the queue: squeue forgets a
 * job MinJobAge seconds after it ended, accounting (or the job completion log) keeps it.
 */
export const SACCT_FIELDS = 'JobID,State,Reason,NodeList,JobName';

export interface QueueView {
  jobId: string;
  state: string;
  reason: string;
  node: string;
  name: string;
}

/**
 * Parses `squeue -h -o SQUEUE_FORMAT` or `sacct -n -P -o SACCT_FIELDS` output, one view per
 * line in order; lines of another form (job steps such as `12.batch`, errors) are ignored.
 */
export function parseJobLines(text: string): QueueView[] {
  const out: QueueView[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split('|');
    if (parts.length < 5 || !/^\d+$/.test(parts[0])) continue;
    const [jobId, state, reason, node] = parts;
    out.push({
      jobId,
      // sacct writes "CANCELLED by 0".
      state: state.split(' ')[0],
      reason: reason === 'None' ? '' : reason,
      node: node === '(null)' || node === 'None assigned' ? '' : node,
      // The name is last and may itself contain '|'.
      name: parts.slice(4).join('|'),
    });
  }
  return out;
}

/** squeue's answer by job id. */
export function parseSqueue(text: string): Map<string, QueueView> {
  return new Map(parseJobLines(text).map((v) => [v.jobId, v]));
}

/**
 * The view of job `jobId` named `name` in an answer: the last one, since job ids restart when
 * a controller starts afresh and the job completion log then holds several jobs of one id.
 */
export function viewOf(views: QueueView[], jobId: string, name: string): QueueView | undefined {
  for (let i = views.length - 1; i >= 0; i--) if (views[i].jobId === jobId && views[i].name === name) return views[i];
  return undefined;
}

/**
 * Where end states of finished jobs come from: `sacct` (the accounting database, slurmdbd),
 * `sacct -c` (the job completion log, JobCompType, on clusters without slurmdbd), or nowhere.
 * A source that says it is disabled is not asked again; the next one is tried.
 */
export type AccountingSource = 'sacct' | 'sacct -c' | 'none';

export function nextSource(source: AccountingSource, stderr: string): AccountingSource | undefined {
  if (source === 'sacct' && /accounting storage is disabled/i.test(stderr)) return 'sacct -c';
  if (source === 'sacct -c' && /job completion is disabled/i.test(stderr)) return 'none';
  return undefined;
}

/** What `pipeline exec --result FILE` writes when the stage has ended. */
export type ResultFile = { ok: true; outputs: Record<string, Json> } | { ok: false; message: string };

/** Where a job is: waiting to start (again), started and not over, or over for good. */
export type Phase = 'queued' | 'running' | 'ended';

/**
 * Every job state squeue (%T) and sacct (State) report, by the phase it means for the stage.
 * The runner's decisions and `pipeline status` both classify by this table alone.
 */
const PHASES: Record<string, Phase> = {
  PENDING: 'queued',
  // Resources allocated, nodes being readied (booted, powered up): the stage has not started.
  CONFIGURING: 'queued',
  // Requeued (by a node failure, preemption or scontrol requeue): it will start again.
  REQUEUED: 'queued',
  REQUEUE_FED: 'queued',
  // Held in the queue until someone releases it (scontrol release): still not ended.
  REQUEUE_HOLD: 'queued',
  SPECIAL_EXIT: 'queued',
  RESV_DEL_HOLD: 'queued',
  RUNNING: 'running',
  // Started and not over: its processes are ending, paused, resized, signalled or copying out.
  COMPLETING: 'running',
  SUSPENDED: 'running',
  STOPPED: 'running',
  RESIZING: 'running',
  SIGNALING: 'running',
  STAGE_OUT: 'running',
  COMPLETED: 'ended',
  FAILED: 'ended',
  CANCELLED: 'ended',
  TIMEOUT: 'ended',
  DEADLINE: 'ended',
  NODE_FAIL: 'ended',
  BOOT_FAIL: 'ended',
  PREEMPTED: 'ended',
  OUT_OF_MEMORY: 'ended',
  // A federation sibling removed because another cluster started the job.
  REVOKED: 'ended',
};

/** A state of this table's phase; one it does not know (a newer Slurm's) counts as ended, as its end states do. */
export function phaseOf(state: string): Phase {
  return PHASES[state] ?? 'ended';
}

/**
 * A job as the live display and `pipeline status` both word it: "Slurm job 13 queued (Priority)",
 * "Slurm job 12 running on node07", "Slurm job 12 SUSPENDED on node07", "Slurm job 12 ended
 * TIMEOUT on node07". The usual state of a phase is said in words, the others by Slurm's name.
 */
export function describeJob(view: QueueView): string {
  const word = phaseOf(view.state) === 'ended' ? `ended ${view.state}` : (IN_WORDS[view.state] ?? view.state);
  const reason = view.reason ? ` (${view.reason})` : '';
  const where = view.node ? ` on ${view.node}` : '';
  return `Slurm job ${view.jobId} ${word}${reason}${where}`;
}

const IN_WORDS: Record<string, string> = { PENDING: 'queued', RUNNING: 'running' };

/**
 * Pending reasons that no amount of waiting clears: the request exceeds what the partition,
 * account or QOS allows. Reasons such as Resources, Priority or ReqNodeNotAvail do clear.
 */
const NEVER_CLEARS = new Set([
  'PartitionTimeLimit',
  'PartitionNodeLimit',
  'PartitionConfig',
  'BadConstraints',
  'InvalidAccount',
  'InvalidQOS',
  'DependencyNeverSatisfied',
  'QOSMaxGRESPerJob',
  'QOSMaxCpuPerJobLimit',
  'QOSMaxMemoryPerJob',
  'QOSMaxNodePerJobLimit',
  'QOSMaxWallDurationPerJobLimit',
  'AssocMaxGRESPerJob',
  'AssocMaxCpuPerJobLimit',
  'AssocMaxMemoryPerJob',
  'AssocMaxNodePerJobLimit',
  'AssocMaxWallDurationPerJobLimit',
  'MaxMemPerLimit',
]);

export type Decision =
  | { kind: 'queued' | 'running'; view: QueueView }
  | { kind: 'done'; outputs: Record<string, Json> }
  /** Ended in a way a resubmission may cure; counted against that state's retries. */
  | { kind: 'retry'; state: RetryState; detail: string }
  | { kind: 'failed'; message: string; cancel?: boolean };

/**
 * One job's decision. `view` is its squeue line (undefined: Slurm no longer knows the job),
 * `result` its result file if written, `warned` whether the time-limit warning reached it.
 */
export function decide(view: QueueView | undefined, result: ResultFile | undefined, warned: boolean): Decision {
  if (result?.ok) return { kind: 'done', outputs: result.outputs };
  // A stage that failed while its job is still active may have been stopped by the time limit
  // or a preemption: only the job's final state tells, so wait for it.
  const phase = view ? phaseOf(view.state) : 'ended';
  if (view && phase !== 'ended') {
    if (view.state === 'PENDING' && NEVER_CLEARS.has(view.reason)) {
      return {
        kind: 'failed',
        message: `Slurm will never start job ${view.jobId}: ${view.reason} (check the profile's partition, time, gpus and account)`,
        cancel: true,
      };
    }
    return { kind: phase, view };
  }
  if (warned) return { kind: 'retry', state: 'TIMEOUT', detail: 'stopped at the time-limit warning' };
  const id = view ? `job ${view.jobId}` : 'the job';
  switch (view?.state) {
    case 'TIMEOUT':
    case 'DEADLINE':
      return { kind: 'retry', state: 'TIMEOUT', detail: `${id} reached its time limit` };
    case 'NODE_FAIL':
    case 'BOOT_FAIL':
      return { kind: 'retry', state: 'NODE_FAIL', detail: `${id} lost its node (${view.state})` };
    case 'PREEMPTED':
      return { kind: 'retry', state: 'PREEMPTED', detail: `${id} was preempted` };
  }
  if (result) return { kind: 'failed', message: result.message };
  switch (view?.state) {
    case 'OUT_OF_MEMORY':
      return { kind: 'failed', message: `${id} ran out of memory (raise the stage's mem in the Slurm profile)` };
    case 'CANCELLED':
      return { kind: 'failed', message: `${id} was cancelled outside this run` };
    case undefined:
      // Gone from the queue (and from accounting, if any) without a result: its node died
      // with it, or it ended long ago while no runner watched. Running it again is the only
      // way to get its result.
      return { kind: 'retry', state: 'NODE_FAIL', detail: 'the job is no longer known to Slurm and wrote no result' };
    default:
      return {
        kind: 'failed',
        message: `${id} ended ${view!.state}${view!.reason ? ` (${view!.reason})` : ''} without a result (see its log)`,
      };
  }
}
