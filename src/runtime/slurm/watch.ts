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
 * Failed queries in a row after which a run stops waiting for an answer: squeue's for its jobs,
 * its own or adopted (they are left to a later run), or sacct's for a job that has left the queue
 * without a result (it fails). At the default poll interval and query timeout (30 s each) two and
 * a half minutes of a command that fails at once, five of one that hangs. A controller restart is
 * shorter; a frozen run that says nothing is worse.
 */
export const QUERY_TRIES = 5;

/** The query a watcher waits on: squeue for every job, sacct for one that has left the queue. */
export type QueryTool = 'squeue' | 'sacct';

interface Watcher {
  name: string;
  resolve: (v: QueueView | undefined) => void;
  reject: (e: QueryUnanswered) => void;
  onFailure?: NextOptions['onFailure'];
  endKnown?: NextOptions['endKnown'];
}

/** Why a watcher got no answer: `tool` failed QUERY_TRIES times in a row. */
export class QueryUnanswered extends Error {
  constructor(
    readonly tool: QueryTool,
    readonly tries: number,
    readonly lastError: string,
  ) {
    super(`${tool} failed ${tries} times in a row (the last: ${lastError})`);
  }
}

/** What a watcher asks of the next poll (QueuePoller.next). */
export interface NextOptions {
  /** Within a short delay rather than a poll interval: a first look. */
  soon?: boolean;
  /** Told of each failed query short of the last: which tool, how many in a row so far, and its error. */
  onFailure?: (tool: QueryTool, failures: number, error: string) => void;
  /**
   * Whether the job's own files already say how it ended (its result file): once it has left
   * the queue it is answered (undefined) without sacct's end state, even when sacct fails.
   */
  endKnown?: () => boolean;
}

/**
 * One look at Slurm (query.ts) for every job being watched, each poll interval. Watchers get
 * the job's line, or undefined when Slurm does not know the job. Each query is killed after
 * `queryTimeoutMs`. A poll that leaves watchers unanswered (squeue failed; or sacct failed,
 * for those whose jobs have left the queue) counts as failed; after QUERY_TRIES in a row of
 * the same tool, the unanswered watchers are told (QueryUnanswered) and the count starts again:
 * a job watched later gets as many tries.
 */
export class QueuePoller {
  private waiting = new Map<string, Watcher[]>();
  private timer: NodeJS.Timeout | undefined;
  /** Failed queries of `failing` in a row: the one count both the display and the give-up go by. */
  private failures = 0;
  private failing: QueryTool = 'squeue';
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
   * The job's state at the next poll that answers for it. Rejected with QueryUnanswered when
   * that poll fails and the query has failed QUERY_TRIES times in a row.
   */
  next(jobId: string, name: string, o: NextOptions = {}): Promise<QueueView | undefined> {
    return new Promise((resolve, reject) => {
      this.watch(jobId, [{ name, resolve, reject, onFailure: o.onFailure, endKnown: o.endKnown }]);
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
      if ('squeueError' in seen) return this.failed('squeue', waiting, seen.squeueError);
      const unanswered = new Map<string, Watcher[]>();
      for (const [id, list] of waiting)
        for (const w of list) {
          const view = seen.view(id, w.name);
          // Gone from the queue while sacct failed: how it ended is unknown, unless its files say.
          if (view || seen.accountingError === undefined || w.endKnown?.()) w.resolve(view);
          else unanswered.set(id, [...(unanswered.get(id) ?? []), w]);
        }
      if (unanswered.size) return this.failed('sacct', unanswered, seen.accountingError!);
      this.failures = 0;
    } finally {
      // Jobs watched while the query was under way wait for the next poll: when every job of
      // this one has ended, no watcher's next() would schedule it.
      this.timer = undefined;
      if (this.waiting.size) this.schedule(this.intervalMs);
    }
  }

  /**
   * No answer is not an answer that the jobs are gone: the unanswered watchers wait for the next
   * poll, told how `tool` fails, until it has failed QUERY_TRIES times in a row. Then they are
   * told they get no answer, and the count starts again for the jobs watched after them.
   */
  private failed(tool: QueryTool, waiting: Map<string, Watcher[]>, error: string): void {
    this.failures = this.failing === tool ? this.failures + 1 : 1;
    this.failing = tool;
    if (this.failures === 1 && tool === 'squeue')
      this.note(`squeue failed (${error}): asking again (at most ${QUERY_TRIES} times in a row)`);
    const watchers = [...waiting.values()].flat();
    if (this.failures >= QUERY_TRIES) {
      for (const w of watchers) w.reject(new QueryUnanswered(tool, this.failures, error));
      this.failures = 0;
      return;
    }
    for (const w of watchers) w.onFailure?.(tool, this.failures, error);
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
 * and that squeue or sacct fails while it does. What to do then (collect, resubmit, cancel) is
 * the caller's: a Slurm run and a local run that adopted a dead run's job do not do the same.
 * Throws QueryUnanswered once squeue has failed QUERY_TRIES times in a row: whether the job
 * still runs, nothing here can tell. A job that has left the queue is decided by its result
 * file when it wrote one; without one, and with sacct failing QUERY_TRIES times in a row, the
 * job fails saying so (its record kept: the next run asks sacct again).
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
    const options: NextOptions = {
      onFailure: (tool, failures, error) => onProgress({ message: queryFailing(record.jobId, tool, failures, error) }),
      endKnown: () => readJobFiles(jobDir).result !== undefined,
    };
    for (let first = true; ; first = false) {
      const next = poller.next(record.jobId, record.name, { ...options, soon: first });
      // Once aborted, nobody waits for this answer: its failure must not go unhandled.
      next.catch(() => {});
      const view = await Promise.race([next, aborted]).catch((e: unknown) => {
        throw e instanceof QueryUnanswered && e.tool === 'sacct' ? new Error(endUnknown(record.jobId, e)) : e;
      });
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

/** What the display shows of a job while squeue (or sacct, once the job has left the queue) fails. */
function queryFailing(jobId: string, tool: QueryTool, failures: number, error: string): string {
  const times = failures === 1 ? 'time' : 'times';
  return (
    `Slurm job ${jobId}: ${tool} failed ${failures} ${times} in a row (the last: ${error}): asking again, ` +
    `giving up after ${QUERY_TRIES}`
  );
}

/** Why a job that left the queue without a result fails when sacct never said how it ended. */
function endUnknown(jobId: string, e: QueryUnanswered): string {
  return (
    `Slurm job ${jobId} has left the queue without writing a result, and sacct does not answer to tell how it ` +
    `ended (${e.tries} queries failed in a row, the last: ${e.lastError}): sacct -j ${jobId} tells how it ended; ` +
    'the next run asks sacct again'
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
