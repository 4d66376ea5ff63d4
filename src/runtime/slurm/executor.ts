/**
 * The Slurm executor: a Launcher that runs each heavy stage instance as a batch job.
 *
 * The job's folder and its record (watch.ts) are what let a new runner adopt the jobs of one
 * that was killed: it finds the record, and waits for that job instead of submitting the stage
 * again (the work folder survives crashes; the entry lock keeps two live runners from sharing
 * one). One squeue query per poll serves all the run's jobs, and one sacct query those of them
 * that have left the queue (see accounting.ts).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { localLauncher, type Launcher, type LaunchSpec } from '../launch.js';
import type { StageOutputs } from '../stage.js';
import type { Progress } from '../../util/progress.js';
import { writeFileAtomic } from '../../util/atomic-write.js';
import { runsLocally, type SlurmProfile } from './profile.js';
import { batchScript, type JobRequest } from './script.js';
import { neverRacing } from './adopt.js';
import { runTool } from './tool.js';
import {
  appendLog,
  cancelJobs,
  collectJob,
  forgetJob,
  jobDirOf,
  progressFileOf,
  QueuePoller,
  QueryUnanswered,
  readJobRecord,
  watchJob,
  type JobEnd,
  type JobRecord,
} from './watch.js';

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
    this.poller = QueuePoller.of(o.profile, o.note);
    // A stage the profile keeps local still never races a job an earlier run submitted for it.
    this.local = neverRacing(localLauncher(o.cliPath), { poller: () => this.poller, note: o.note });
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
      appendLog(spec.logFile, `# adopted Slurm job ${record.jobId} (attempt ${record.attempt})`);
    } else {
      record = await this.submit(spec, jobDir, 1, {});
    }
    for (;;) {
      const end = await this.watchOrLeaveToNextRun(spec, record, onProgress, signal);
      switch (end.kind) {
        case 'aborted':
          // This run's job (submitted or adopted): Ctrl-C cancels it.
          this.cancel(record.jobId);
          await this.cancelling;
          forgetJob(jobDir);
          throw new Error('interrupted');
        case 'done':
          collectJob(record.jobId, jobDir, spec.outDir);
          return end.outputs;
        case 'failed':
          if (end.cancel) await cancelJobs([record.jobId], this.o.note);
          forgetJob(jobDir);
          throw new Error(end.message);
        case 'retry': {
          const used = record.retriesUsed[end.state] ?? 0;
          if (used >= this.o.profile.retries[end.state]) {
            forgetJob(jobDir);
            throw new Error(
              `${end.detail}; no retries left for ${end.state} (${used} used; profile retries.${end.state})`,
            );
          }
          this.o.note(
            `${spec.instance}: ${end.detail}: submitting it again (${end.state} retry ${used + 1} of ` +
              `${this.o.profile.retries[end.state]})`,
          );
          appendLog(spec.logFile, `# ${end.detail}: resubmitted (${end.state} retry ${used + 1})`);
          record = await this.submit(spec, jobDir, record.attempt + 1, {
            ...record.retriesUsed,
            [end.state]: used + 1,
          });
        }
      }
    }
  }

  /**
   * watchJob(), given up when squeue keeps failing (watch.ts QUERY_TRIES): the job is left
   * running, its record kept for the next run to adopt, and the user told how to check on it.
   */
  private async watchOrLeaveToNextRun(
    spec: LaunchSpec,
    record: JobRecord,
    onProgress: (p: Progress) => void,
    signal: AbortSignal,
  ): Promise<JobEnd> {
    try {
      return await watchJob(this.poller, record, jobDirOf(spec.workDir), onProgress, signal);
    } catch (e) {
      if (!(e instanceof QueryUnanswered)) throw e;
      const id = record.jobId;
      const why = `squeue does not answer (${e.tries} queries failed in a row, the last: ${e.lastError})`;
      appendLog(spec.logFile, `# stopped waiting for Slurm job ${id}: ${why}`);
      throw new Error(
        `Slurm job ${id} may still be queued or running, but ${why}: the run stopped waiting for it; ` +
          `squeue -j ${id} tells whether it still runs, scancel ${id} cancels it, and the next run adopts it`,
      );
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
    appendLog(spec.logFile, `# submitted as Slurm job ${jobId} (attempt ${attempt}): ${script}`);
    return record;
  }

  private async sbatch(script: string, env: Record<string, string>): Promise<string> {
    for (let tries = 1; ; tries++) {
      const a = await runTool('sbatch', ['--parsable', script], { env: submitEnv(env) });
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
      return cancelJobs(ids, this.o.note);
    });
  }
}
