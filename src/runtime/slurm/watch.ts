/**
 * What a run knows of a recorded batch job and how it watches one. Each job has a folder on the
 * shared filesystem, `<work folder of its key>/.slurm/`: the script, the spec, the stage's
 * output folder, the result file `pipeline exec` writes, its progress file, and `job.json`, the
 * record of the submitted job. The record outlives the runner that wrote it: a later run, Slurm
 * or local, finds it and waits for that job instead of computing the entry a second time.
 */
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Progress } from '../../util/progress.js';
import { linkTree } from '../fsutil.js';
import { readProgressFile, type ProgressFile } from '../progress-file.js';
import type { RetryState, SlurmProfile } from './profile.js';
import { Accounting } from './accounting.js';
import { lookUpJobs, QUERY_TIMEOUT_S } from './query.js';
import { decide, describeJob, type Decision, type QueueView, type ResultFile } from './state.js';
import { runTool } from './tool.js';

/** What `job.json` holds: enough to find the job again and to go on counting its retries. */
export interface JobRecord {
  jobId: string;
  name: string;
  instance: string;
  pipeline: string;
  key: string;
  attempt: number;
  retriesUsed: Partial<Record<RetryState, number>>;
  submittedAt: string;
}

export const JOB_DIR = '.slurm';

export function jobDirOf(workDir: string): string {
  return join(workDir, JOB_DIR);
}

/** Where the job's `pipeline exec` writes the stage's progress. */
export function progressFileOf(jobDir: string): string {
  return join(jobDir, 'progress.json');
}

/**
 * What the display shows of a job still queued or running: the job as `pipeline status` words
 * it, after the stage's own report once the stage has sent one ("step 400/1000 (Slurm job 12
 * running on node07)").
 */
export function jobProgress(decision: { kind: 'queued' | 'running'; view: QueueView }, file?: ProgressFile): Progress {
  const job = describeJob(decision.view);
  // A requeued job's file is its earlier start's.
  if (!file || decision.kind === 'queued') return { message: job };
  const { message, ...rest } = file.progress;
  return { ...rest, message: message ? `${message} (${job})` : job };
}

/** What a job writes into its folder besides its outputs: its result, the warning marker, its progress. */
export interface JobFiles {
  result?: ResultFile;
  warned: boolean;
  progress?: ProgressFile;
}

export function readJobFiles(jobDir: string): JobFiles {
  return {
    result: readResult(jobDir),
    warned: existsSync(join(jobDir, 'warned')),
    progress: readProgressFile(progressFileOf(jobDir)),
  };
}

function readResult(jobDir: string): ResultFile | undefined {
  try {
    // Listing the folder first makes an NFS client drop its cached view of it.
    readdirSync(jobDir);
    return JSON.parse(readFileSync(join(jobDir, 'result.json'), 'utf8')) as ResultFile;
  } catch {
    return undefined;
  }
}

export function jobRecordFile(workDir: string): string {
  return join(jobDirOf(workDir), 'job.json');
}

export function readJobRecord(workDir: string): JobRecord | undefined {
  try {
    return JSON.parse(readFileSync(jobRecordFile(workDir), 'utf8')) as JobRecord;
  } catch {
    return undefined;
  }
}

/**
 * Failed squeue queries in a row after which a run stops waiting for its jobs, its own or
 * adopted (SqueueUnanswered), and leaves them to a later run: at the default poll interval and
 * query timeout (30 s each) two and a half minutes of a squeue that fails at once, five of one
 * that hangs. A controller restart is shorter; a frozen run that says nothing is worse.
 */
export const SQUEUE_TRIES = 5;

interface Watcher {
  name: string;
  resolve: (v: QueueView | undefined) => void;
  reject: (e: SqueueUnanswered) => void;
  onFailure?: (failures: number, error: string) => void;
}

/** Why a watcher got no answer: squeue failed SQUEUE_TRIES times (or more) in a row. */
export class SqueueUnanswered extends Error {
  constructor(
    readonly tries: number,
    readonly lastError: string,
  ) {
    super(`squeue failed ${tries} times in a row (the last: ${lastError})`);
  }
}

/** What a watcher asks of the next poll (QueuePoller.next). */
export interface NextOptions {
  /** Within a short delay rather than a poll interval: a first look. */
  soon?: boolean;
  /** Told of each failed query short of the last: how many in a row so far, and its error. */
  onFailure?: (failures: number, error: string) => void;
}

/**
 * One look at Slurm (query.ts) for every job being watched, each poll interval. Watchers get
 * the job's line, or undefined when Slurm does not know the job. Each query is killed after
 * `queryTimeoutMs`; after SQUEUE_TRIES failed squeue queries in a row, every watcher is told
 * (SqueueUnanswered), and so is each later one until squeue answers again.
 */
export class QueuePoller {
  private waiting = new Map<string, Watcher[]>();
  private timer: NodeJS.Timeout | undefined;
  /** Failed squeue queries in a row: the one count both the display and the give-up go by. */
  private failures = 0;
  private stopped = false;
  private accounting: Accounting;

  constructor(
    private intervalMs: number,
    private note: (line: string) => void,
    private queryTimeoutMs = QUERY_TIMEOUT_S * 1000,
  ) {
    this.accounting = new Accounting(note, queryTimeoutMs);
  }

  /** The poller a profile asks for (poll_interval, query_timeout). */
  static of(profile: SlurmProfile, note: (line: string) => void): QueuePoller {
    return new QueuePoller(profile.poll_interval * 1000, note, profile.query_timeout * 1000);
  }

  /**
   * The job's state at the next poll that squeue answers. Rejected with SqueueUnanswered when
   * that poll fails and squeue has failed SQUEUE_TRIES times in a row.
   */
  next(jobId: string, name: string, o: NextOptions = {}): Promise<QueueView | undefined> {
    return new Promise((resolve, reject) => {
      this.watch(jobId, [{ name, resolve, reject, onFailure: o.onFailure }]);
      this.schedule(o.soon ? Math.min(this.intervalMs, 200) : this.intervalMs);
    });
  }

  private watch(jobId: string, watchers: Watcher[]): void {
    this.waiting.set(jobId, [...watchers, ...(this.waiting.get(jobId) ?? [])]);
  }

  private schedule(ms: number): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => void this.poll(), ms);
  }

  private async poll(): Promise<void> {
    const waiting = this.waiting;
    this.waiting = new Map();
    const jobs = [...waiting].flatMap(([jobId, list]) => list.map((w) => ({ jobId, name: w.name })));
    try {
      const seen = await lookUpJobs(jobs, this.accounting, this.queryTimeoutMs);
      if ('squeueError' in seen) return this.failed(waiting, seen.squeueError);
      this.failures = 0;
      if (!seen.accountingAnswered) return this.askAgain(waiting);
      for (const [id, list] of waiting) for (const w of list) w.resolve(seen.view(id, w.name));
    } finally {
      // Jobs watched while the query was under way wait for the next poll: when every job of
      // this one has ended, no watcher's next() would schedule it.
      this.timer = undefined;
      if (this.waiting.size) this.schedule(this.intervalMs);
    }
  }

  /**
   * No answer is not an answer that the jobs are gone: the watchers wait for the next poll,
   * told how squeue fails, until it has failed SQUEUE_TRIES times in a row.
   */
  private failed(waiting: Map<string, Watcher[]>, error: string): void {
    if (++this.failures === 1)
      this.note(`squeue failed (${error}): asking again (at most ${SQUEUE_TRIES} times in a row)`);
    const watchers = [...waiting.values()].flat();
    if (this.failures >= SQUEUE_TRIES) {
      for (const w of watchers) w.reject(new SqueueUnanswered(this.failures, error));
      return;
    }
    for (const w of watchers) w.onFailure?.(this.failures, error);
    this.askAgain(waiting);
  }

  private askAgain(waiting: Map<string, Watcher[]>): void {
    for (const [id, list] of waiting) this.watch(id, list);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

type Live = Extract<Decision, { kind: 'queued' | 'running' }>;

const isLive = (d: Decision): d is Live => d.kind === 'queued' || d.kind === 'running';

/** How watching a job ended: as decide() decided once the job was over, or aborted by the run. */
export type JobEnd = Exclude<Decision, Live> | { kind: 'aborted' };

/**
 * Watches a recorded job until it is over or `signal` aborts, showing its progress meanwhile,
 * and that squeue fails while it does. What to do then (collect, resubmit, cancel) is the
 * caller's: a Slurm run and a local run that adopted a dead run's job do not do the same.
 * Throws SqueueUnanswered once squeue has failed SQUEUE_TRIES times in a row: whether the job
 * still runs, nothing here can tell.
 */
export async function watchJob(
  poller: QueuePoller,
  record: JobRecord,
  jobDir: string,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
): Promise<JobEnd> {
  let onAbort = () => {};
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const onFailure = (failures: number, error: string) =>
      onProgress({ message: squeueFailing(record.jobId, failures, error) });
    for (let first = true; ; first = false) {
      const next = poller.next(record.jobId, record.name, { soon: first, onFailure });
      // Once aborted, nobody waits for this answer: its failure must not go unhandled.
      next.catch(() => {});
      const view = await Promise.race([next, aborted]);
      if (view === 'aborted' || signal.aborted) return { kind: 'aborted' };
      const files = readJobFiles(jobDir);
      const decision = decide(view, files.result, files.warned);
      if (!isLive(decision)) return decision;
      onProgress(jobProgress(decision, files.progress));
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** What the display shows of a job while squeue fails. */
function squeueFailing(jobId: string, failures: number, error: string): string {
  const times = failures === 1 ? 'time' : 'times';
  return (
    `Slurm job ${jobId}: squeue failed ${failures} ${times} in a row (the last: ${error}): asking again, ` +
    `giving up after ${SQUEUE_TRIES}`
  );
}

export async function cancelJobs(ids: string[], note: (line: string) => void): Promise<void> {
  if (!ids.length) return;
  const a = await runTool('scancel', ids);
  if (a.code !== 0) note(`scancel ${ids.join(' ')} failed: ${a.stderr.trim()}`);
}

/**
 * Gives the runner the job's outputs where it builds the cache entry from, and keeps them, with
 * the job's record, in the job's folder: a runner killed before it committed the entry leaves
 * the job for the next run to collect again, not to compute again. The runner removes the
 * whole work folder, record included, once the entry is committed (run.ts).
 */
export function collectJob(jobId: string, jobDir: string, outDir: string): void {
  const out = join(jobDir, 'out');
  if (!existsSync(out)) {
    // A runner before this one moved them into its own temporary folder and was killed before
    // it forgot the job: unless forgotten, the job would fail every later run here.
    forgetJob(jobDir);
    throw new Error(
      `Slurm job ${jobId}'s outputs are no longer in ${out} (a run that collected them stopped before it ` +
        'stored them): the next run computes the entry again',
    );
  }
  rmSync(outDir, { recursive: true, force: true });
  linkTree(out, outDir);
}

/** The job is over for this runner: no later run may adopt it. */
export function forgetJob(jobDir: string): void {
  rmSync(join(jobDir, 'job.json'), { force: true });
}

export function appendLog(logFile: string, line: string): void {
  try {
    writeFileSync(logFile, `${line}\n`, { flag: 'a' });
  } catch {
    /* the log is a courtesy */
  }
}
