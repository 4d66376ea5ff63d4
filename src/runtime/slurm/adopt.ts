/**
 * A local run and the batch job a dead Slurm run left for the same cache entry. The job may
 * still be queued or running, writing into the entry's work folder: running the stage here
 * too would compute the entry twice, both into that folder. A dead run's work is finished or
 * adopted, never raced, whatever the executor of the next run: before a stage runs on this
 * machine, a job recorded for its entry is waited for (through squeue and sacct, as a Slurm run
 * waits for its own jobs) and its outputs collected. A local run does with that job what a Slurm
 * run would decide (watch.ts, state.ts decide()), except that it submits nothing: where a Slurm
 * run would submit the job again (time limit, lost node, preemption, no trace), the stage runs
 * here, resuming from its checkpoint in the work folder. Ctrl-C ends the wait, not the job: the
 * local run did not submit it, and a later run adopts it again. Where squeue is not installed,
 * or installed and never answers (no controller, a client without configuration), nothing can
 * tell whether the job still runs: the entry is refused, the job left alone (unwatchable()).
 */
import type { Launcher, LaunchSpec } from '../launch.js';
import type { StageOutputs } from '../stage.js';
import type { Progress } from '../../util/progress.js';
import { runTool } from './tool.js';
import {
  appendLog,
  cancelJobs,
  collectJob,
  forgetJob,
  jobDirOf,
  jobRecordFile,
  readJobFiles,
  readJobRecord,
  watchJob,
  QueryUnanswered,
  type JobEnd,
  type JobRecord,
  type QueuePoller,
} from './watch.js';

export interface NeverRacingOptions {
  /** Watches the adopted jobs: the Slurm run's own poller, or one made on first need. */
  poller: () => QueuePoller;
  note: (line: string) => void;
}

/** `local`, after waiting for the job a dead run recorded for the entry, if any (see above). */
export function neverRacing(local: Launcher, o: NeverRacingOptions): Launcher {
  let squeue: Promise<boolean> | undefined;
  return async (spec, specFile, onProgress, signal) => {
    const record = readJobRecord(spec.workDir);
    if (record?.key === spec.key) {
      squeue ??= runTool('squeue', ['--version']).then((a) => a.code !== 127);
      const outputs = await adoptJob(spec, record, await squeue, onProgress, signal, o);
      if (outputs) return outputs;
    }
    return local(spec, specFile, onProgress, signal);
  };
}

/** The job's outputs, or undefined when it ended in a way that leaves the stage to run here. */
async function adoptJob(
  spec: LaunchSpec,
  record: JobRecord,
  squeueInstalled: boolean,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
  o: NeverRacingOptions,
): Promise<StageOutputs | undefined> {
  const jobDir = jobDirOf(spec.workDir);
  const id = record.jobId;
  if (!squeueInstalled) return collectUnwatched(spec, record);
  o.note(`${spec.instance}: adopting Slurm job ${id} of an earlier run: waiting for it`);
  appendLog(spec.logFile, `# adopted Slurm job ${id} (attempt ${record.attempt}) by a local run`);
  const end = await watchOrRefuseEntry(spec, record, onProgress, signal, o);
  switch (end.kind) {
    case 'aborted':
      o.note(`${spec.instance}: Slurm job ${id} left running: a later run adopts it (scancel ${id} cancels it)`);
      throw new Error('interrupted');
    case 'done':
      collectJob(id, jobDir, spec.outDir);
      return end.outputs;
    case 'failed':
      if (end.cancel) await cancelJobs([id], o.note);
      forgetJob(jobDir);
      throw new Error(end.message);
    case 'retry':
      forgetJob(jobDir);
      o.note(`${spec.instance}: ${end.detail}: running the stage here`);
      appendLog(spec.logFile, `# ${end.detail}: running the stage here`);
      return undefined;
  }
}

/** watchJob(), the entry refused (the job left alone) when squeue keeps failing (watch.ts QUERY_TRIES). */
async function watchOrRefuseEntry(
  spec: LaunchSpec,
  record: JobRecord,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
  o: NeverRacingOptions,
): Promise<JobEnd> {
  try {
    return await watchJob(o.poller(), record, jobDirOf(spec.workDir), onProgress, signal);
  } catch (e) {
    if (!(e instanceof QueryUnanswered)) throw e;
    const why = `squeue does not answer here to tell (${e.tries} queries failed in a row, the last: ${e.lastError})`;
    appendLog(spec.logFile, `# Slurm job ${record.jobId} left alone: ${why}`);
    throw new Error(unwatchable(record.jobId, jobRecordFile(spec.workDir), why));
  }
}

/**
 * Without squeue nothing tells whether the job still runs: only its own result file can say it
 * finished. Otherwise the entry is refused, the job left alone, with what the user can do.
 */
function collectUnwatched(spec: LaunchSpec, record: JobRecord): StageOutputs {
  const jobDir = jobDirOf(spec.workDir);
  const { result } = readJobFiles(jobDir);
  if (result?.ok) {
    collectJob(record.jobId, jobDir, spec.outDir);
    return result.outputs;
  }
  throw new Error(unwatchable(record.jobId, jobRecordFile(spec.workDir)));
}

/**
 * Why a job cannot be adopted on this machine, and the ways out; `pipeline status` says it too.
 * `why`: what keeps squeue from telling whether the job still runs.
 */
export function unwatchable(jobId: string, recordFile: string, why = 'squeue is not installed here to tell'): string {
  return (
    `Slurm job ${jobId} of an earlier run may still be computing this entry, and ${why}: run from the cluster ` +
    `(pipeline run --executor slurm adopts the job, scancel ${jobId} cancels it), or, ` +
    `if the job is over, delete its record ${recordFile} to compute the entry here`
  );
}
