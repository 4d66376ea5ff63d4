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
import type { RetryState } from './profile.js';
import { Accounting } from './accounting.js';
import { lookUpJobs } from './query.js';
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

interface Watcher {
  name: string;
  resolve: (v: QueueView | undefined) => void;
  reject: (e: SqueueUnanswered) => void;
  /** Queries that failed since this watcher asked, and how many it waits through. */
  failures: number;
  maxFailures: number;
}

/** Why a watcher that set a limit (QueuePoller.next) got no answer: squeue failed that many times in a row. */
export class SqueueUnanswered extends Error {
  constructor(
    readonly tries: number,
    readonly lastError: string,
  ) {
    super(`squeue failed ${tries} times in a row (the last: ${lastError})`);
  }
}

/**
 * One look at Slurm (query.ts) for every job being watched, each poll interval. Watchers get
 * the job's line, or undefined when Slurm does not know the job.
 */
export class QueuePoller {
  private waiting = new Map<string, Watcher[]>();
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private accounting: Accounting;

  constructor(
    private intervalMs: number,
    private note: (line: string) => void,
  ) {
    this.accounting = new Accounting(note);
  }

  /**
   * The job's state at the next poll that squeue answers (`soon`: within a short delay, for a
   * first look). Rejected with SqueueUnanswered once `maxFailures` polls in a row have failed.
   */
  next(jobId: string, name: string, soon = false, maxFailures = Infinity): Promise<QueueView | undefined> {
    return new Promise((resolve, reject) => {
      this.watch(jobId, [{ name, resolve, reject, failures: 0, maxFailures }]);
      this.schedule(soon ? Math.min(this.intervalMs, 200) : this.intervalMs);
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
      const seen = await lookUpJobs(jobs, this.accounting);
      if ('squeueError' in seen) {
        // No answer is not an answer that the jobs are gone: ask again at the next poll.
        if (++this.failures === 1 || this.failures % 10 === 0)
          this.note(`squeue failed (${seen.squeueError}): asking again`);
        return this.askAgain(this.giveUp(waiting, seen.squeueError));
      }
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

  /** The watchers still willing to wait after one more failed query; the others are told. */
  private giveUp(waiting: Map<string, Watcher[]>, error: string): Map<string, Watcher[]> {
    const still = new Map<string, Watcher[]>();
    for (const [id, list] of waiting) {
      const left: Watcher[] = [];
      for (const w of list) {
        if (++w.failures < w.maxFailures) left.push(w);
        else w.reject(new SqueueUnanswered(w.failures, error));
      }
      if (left.length) still.set(id, left);
    }
    return still;
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
 * Watches a recorded job until it is over or `signal` aborts, showing its progress meanwhile.
 * What to do then (collect, resubmit, cancel) is the caller's: a Slurm run and a local run that
 * adopted a dead run's job do not do the same. With `maxFailures`, SqueueUnanswered is thrown
 * once squeue has failed that many times in a row (without: asked again for as long as it takes).
 */
export async function watchJob(
  poller: QueuePoller,
  record: JobRecord,
  jobDir: string,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
  maxFailures = Infinity,
): Promise<JobEnd> {
  let onAbort = () => {};
  const aborted = new Promise<'aborted'>((resolve) => {
    onAbort = () => resolve('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    for (let first = true; ; first = false) {
      const next = poller.next(record.jobId, record.name, first, maxFailures);
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
