/**
 * The Slurm executor: a Launcher that runs each heavy stage instance as a batch job.
 *
 * Each job has a folder on the shared filesystem, `<work folder of its key>/.slurm/`: the
 * script, the spec, the stage's output folder, the result file `pipeline exec` writes, and
 * `job.json`, the record of the submitted job. The record is what lets a new runner adopt the
 * jobs of one that was killed: it finds the record, and waits for that job instead of
 * submitting the stage again (the work folder survives crashes; the entry lock keeps two live
 * runners from sharing one). One squeue query per poll serves all the run's jobs, and one
 * sacct query those of them that have left the queue (see accounting.ts).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localLauncher, type Launcher, type LaunchSpec } from '../launch.js';
import type { StageOutputs } from '../stage.js';
import type { Progress } from '../../util/progress.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { readProgressFile, type ProgressFile } from '../progress-file.js';
import { runsLocally, type RetryState, type SlurmProfile } from './profile.js';
import { batchScript, type JobRequest } from './script.js';
import { Accounting } from './accounting.js';
import { lookUpJobs } from './query.js';
import { decide, describeJob, type QueueView, type ResultFile } from './state.js';
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

export function readJobRecord(workDir: string): JobRecord | undefined {
  try {
    return JSON.parse(readFileSync(join(jobDirOf(workDir), 'job.json'), 'utf8')) as JobRecord;
  } catch {
    return undefined;
  }
}

/**
 * The environment sbatch gets: this one without SLURM_* (a runner inside an allocation would
 * pass that allocation's settings on to every job), except SLURM_CONF, which says where the
 * cluster's configuration is.
 */
function submitEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('SLURM_') || k === 'SLURM_CONF') env[k] = v;
  return { ...env, ...extra };
}

/** Transient errors of a busy controller: sbatch is retried on these, not failed. */
const TRANSIENT = /Socket timed out|Unable to contact slurm controller|Resource temporarily unavailable|try again/i;

interface Watcher {
  name: string;
  resolve: (v: QueueView | undefined) => void;
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

  /** The job's state at the next poll (`soon`: within a short delay, for a first look). */
  next(jobId: string, name: string, soon = false): Promise<QueueView | undefined> {
    return new Promise((resolve) => {
      this.watch(jobId, [{ name, resolve }]);
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
        return this.askAgain(waiting);
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

  private askAgain(waiting: Map<string, Watcher[]>): void {
    for (const [id, list] of waiting) this.watch(id, list);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

export interface SlurmExecutorOptions {
  profile: SlurmProfile;
  cliPath: string;
  pipelineName: string;
  /** Lines for the user (adoptions, retries, squeue trouble). */
  note: (line: string) => void;
}

export class SlurmExecutor {
  private poller: QueuePoller;
  private toCancel = new Set<string>();
  private cancelling: Promise<void> | undefined;
  private local: Launcher;

  constructor(private o: SlurmExecutorOptions) {
    this.poller = new QueuePoller(o.profile.poll_interval * 1000, o.note);
    this.local = localLauncher(o.cliPath);
  }

  /** The runner's launcher: stages the profile keeps local run as child processes, the others as jobs. */
  readonly launcher: Launcher = (spec, specFile, onProgress, signal) =>
    runsLocally(this.o.profile, spec.stageId, spec.stage)
      ? this.local(spec, specFile, onProgress, signal)
      : this.runJob(spec, onProgress, signal);

  close(): void {
    this.poller.stop();
  }

  private async runJob(
    spec: LaunchSpec,
    onProgress: (p: Progress) => void,
    signal: AbortSignal,
  ): Promise<StageOutputs> {
    const jobDir = jobDirOf(spec.workDir);
    let record = readJobRecord(spec.workDir);
    if (record && record.key === spec.key) {
      this.o.note(`${spec.instance}: adopting Slurm job ${record.jobId} of an earlier run`);
      this.appendLog(spec, `# adopted Slurm job ${record.jobId} (attempt ${record.attempt})`);
    } else {
      record = await this.submit(spec, jobDir, 1, {});
    }
    let onAbort = () => {};
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => {
        this.cancel(record!.jobId);
        resolve('aborted');
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      for (let first = true; ; first = false) {
        const view = await Promise.race([this.poller.next(record.jobId, record.name, first), aborted]);
        if (view === 'aborted' || signal.aborted) {
          await this.cancelling;
          this.forget(jobDir);
          throw new Error('interrupted');
        }
        const files = readJobFiles(jobDir);
        const decision = decide(view, files.result, files.warned);
        switch (decision.kind) {
          case 'queued':
          case 'running':
            onProgress(jobProgress(decision, files.progress));
            continue;
          case 'done':
            this.collect(jobDir, spec.outDir);
            return decision.outputs;
          case 'failed':
            if (decision.cancel) await this.cancelNow([record.jobId]);
            this.forget(jobDir);
            throw new Error(decision.message);
          case 'retry': {
            const used = record.retriesUsed[decision.state] ?? 0;
            if (used >= this.o.profile.retries[decision.state]) {
              this.forget(jobDir);
              throw new Error(
                `${decision.detail}; no retries left for ${decision.state} (${used} used; profile retries.${decision.state})`,
              );
            }
            this.o.note(
              `${spec.instance}: ${decision.detail}: submitting it again (${decision.state} retry ${used + 1} of ` +
                `${this.o.profile.retries[decision.state]})`,
            );
            this.appendLog(spec, `# ${decision.detail}: resubmitted (${decision.state} retry ${used + 1})`);
            record = await this.submit(spec, jobDir, record.attempt + 1, {
              ...record.retriesUsed,
              [decision.state]: used + 1,
            });
            continue;
          }
        }
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Writes the job's folder afresh and submits its script; records the job before returning. */
  private async submit(
    spec: LaunchSpec,
    jobDir: string,
    attempt: number,
    retriesUsed: JobRecord['retriesUsed'],
  ): Promise<JobRecord> {
    rmSync(jobDir, { recursive: true, force: true });
    mkdirSync(join(jobDir, 'out'), { recursive: true });
    const specFile = join(jobDir, 'spec.json');
    const resultFile = join(jobDir, 'result.json');
    // The stage writes into the job folder, which outlives this runner (tmp/ folders do not).
    writeFileSync(specFile, JSON.stringify({ ...spec, outDir: join(jobDir, 'out') }));
    const name = `pl-${spec.key.slice(0, 12)}-${spec.instance.replace(/[^A-Za-z0-9_.=-]+/g, '_')}`.slice(0, 120);
    const req: JobRequest = {
      name,
      instance: spec.instance,
      key: spec.key,
      jobDir,
      logFile: spec.logFile,
      warnedFile: join(jobDir, 'warned'),
      command: [
        this.o.profile.node ?? process.execPath,
        this.o.cliPath,
        'exec',
        specFile,
        '--result',
        resultFile,
        '--progress-file',
        progressFileOf(jobDir),
      ],
      resources: spec.resources,
      override: this.o.profile.stages[spec.stageId],
      attempt,
    };
    const script = join(jobDir, 'job.sh');
    writeFileSync(script, batchScript(this.o.profile, req), { mode: 0o755 });
    const jobId = await this.sbatch(script, spec.env);
    const record: JobRecord = {
      jobId,
      name,
      instance: spec.instance,
      pipeline: this.o.pipelineName,
      key: spec.key,
      attempt,
      retriesUsed,
      submittedAt: new Date().toISOString(),
    };
    writeFileAtomic(join(jobDir, 'job.json'), JSON.stringify(record, null, 1));
    this.appendLog(spec, `# submitted as Slurm job ${jobId} (attempt ${attempt}): ${script}`);
    return record;
  }

  private async sbatch(script: string, env: Record<string, string>): Promise<string> {
    for (let tries = 1; ; tries++) {
      const a = await runTool('sbatch', ['--parsable', script], submitEnv(env));
      const id = a.stdout.trim().split(';')[0];
      if (a.code === 0 && /^\d+$/.test(id)) return id;
      const why = a.stderr.trim().replace(/^sbatch: error: /gm, '') || `exit ${a.code}`;
      if (tries >= 3 || !TRANSIENT.test(why)) throw new Error(`sbatch refused the job: ${why} (script ${script})`);
      await new Promise((r) => setTimeout(r, 2000 * tries));
    }
  }

  /** Cancels go out together: Ctrl-C during a sweep sends one scancel, not one per job. */
  private cancel(jobId: string): void {
    this.toCancel.add(jobId);
    this.cancelling ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      const ids = [...this.toCancel];
      this.toCancel.clear();
      this.cancelling = undefined;
      return this.cancelNow(ids);
    });
  }

  private async cancelNow(ids: string[]): Promise<void> {
    if (!ids.length) return;
    const a = await runTool('scancel', ids);
    if (a.code !== 0) this.o.note(`scancel ${ids.join(' ')} failed: ${a.stderr.trim()}`);
  }

  /** Moves the job's outputs to where the runner builds the cache entry from. */
  private collect(jobDir: string, outDir: string): void {
    rmSync(outDir, { recursive: true, force: true });
    renameSync(join(jobDir, 'out'), outDir);
    this.forget(jobDir);
  }

  /** The job is over for this runner: no later run may adopt it. */
  private forget(jobDir: string): void {
    rmSync(join(jobDir, 'job.json'), { force: true });
  }

  private appendLog(spec: LaunchSpec, line: string): void {
    try {
      writeFileSync(spec.logFile, `${line}\n`, { flag: 'a' });
    } catch {
      /* the log is a courtesy */
    }
  }
}
