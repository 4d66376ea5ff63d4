/**
 * Running one stage instance. A resolved spec (params, folders, env) is all a stage needs;
 * light stages run inside the runner, heavy ones in a child process started by a Launcher:
 * today `node cli.js exec SPEC` on this machine, tomorrow the same command through sbatch.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { appendFileSync, closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { processStart } from './fsutil.js';
import type { Json, StageContext, StageOutputs, StageType } from './stage.js';
import type { Progress } from '../util/progress.js';
import type { Provenance } from '../util/provenance.js';

export interface LaunchSpec {
  /** Stage type name (`uses:`). */
  stage: string;
  instance: string;
  /** The stage's id in the pipeline (a matrix stage's instances share it). */
  stageId: string;
  /** The instance's cache key: its work folder and a job's record are named by it. */
  key: string;
  /** What the instance asked for (gpu, cpu, mem...): an executor maps them to its requests. */
  resources: Record<string, number>;
  params: Record<string, Json>;
  outDir: string;
  workDir: string;
  pipelineDir: string;
  env: Record<string, string>;
  provenance?: Provenance;
  /** Where the stage's own output (stdout/stderr, ctx.log) goes. */
  logFile: string;
}

/** Where a running stage's log lines and progress go. */
export interface StageEvents {
  progress(p: Progress): void;
  log(line: string): void;
}

/**
 * The context a stage's run() gets from a spec, wherever it runs (in the runner or a child).
 * `recordProcesses: false` in a batch job: its processes belong to the scheduler (scancel ends
 * them, and a later runner adopts the job), so they must not be listed for the next local run
 * to kill as a dead runner's strays.
 */
export function stageContext(
  spec: LaunchSpec,
  signal: AbortSignal,
  events: StageEvents,
  recordProcesses = true,
): StageContext<Record<string, Json>> {
  const recordIn = recordProcesses ? spec.workDir : undefined;
  return {
    params: spec.params,
    instance: spec.instance,
    outDir: spec.outDir,
    workDir: spec.workDir,
    pipelineDir: spec.pipelineDir,
    env: spec.env,
    provenance: spec.provenance,
    signal,
    spawn: (command, args, request) => spawnGroup(command, args, request, signal, STAGE_PROCESS_GRACE_MS, recordIn),
    log: (line) => events.log(line),
    progress: (p) => events.progress(p),
  };
}

/** Starts a stage somewhere and resolves with its outputs; rejects on failure or abort. */
export type Launcher = (
  spec: LaunchSpec,
  specFile: string,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
) => Promise<StageOutputs>;

/** Message protocol from `exec` children (over the IPC channel). */
export type ChildMessage =
  | { type: 'progress'; progress: Progress }
  | { type: 'result'; outputs: StageOutputs }
  | { type: 'error'; message: string };

/** Process groups of running children, so an emergency exit can still end them. */
const liveChildren = new Set<number>();

export function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* gone */
    }
  }
}

/** Ends every running child group at once (second Ctrl-C, fatal error). */
export function killAllChildren(signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of liveChildren) killGroup(pid, signal);
}

/** How a stage starts a process: what `ctx.spawn` takes besides the command and its arguments. */
export interface SpawnRequest {
  cwd?: string;
  env?: Record<string, string>;
  stdio?: StdioOptions;
}

/**
 * The one way the runtime and its stages start a process: in its own process group (so
 * ending it ends its whole tree), known to killAllChildren until it exits, and ended when
 * `signal` aborts (SIGTERM to the group, SIGKILL after `graceMs`).
 *
 * The group also dies with the runner, however the runner dies (SIGKILL included): the
 * command is started through a bash watchdog that shares its group and waits on a pipe
 * whose other end only this process holds; when that end closes (this process exited, or
 * the command has exited and the pipe is closed below), the watchdog SIGKILLs the group.
 * With `workDir`, the group is recorded next to that work folder (see strayProcessFile) so
 * that the next run of the same entry can end whatever escaped before reusing the folder.
 */
export function spawnGroup(
  command: string,
  args: string[],
  request: SpawnRequest,
  signal: AbortSignal,
  graceMs: number,
  workDir?: string,
): ChildProcess {
  const stdio = normalizeStdio(request.stdio);
  const watchFd = stdio.length;
  const child = spawn('bash', ['-c', WATCHDOG, 'pipeline-watchdog', String(watchFd), command, ...args], {
    ...request,
    stdio: [...stdio, 'pipe'],
    detached: true,
  });
  if (child.pid === undefined) return child; // failed to start: the 'error' event says why
  const pid = child.pid;
  liveChildren.add(pid);
  if (workDir) appendFileSync(strayProcessFile(workDir), `${pid} ${processStart(pid) ?? 0}\n`);
  let killTimer: NodeJS.Timeout | undefined;
  const onAbort = () => {
    killGroup(pid, 'SIGTERM');
    killTimer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  // The command is done: closing the pipe makes the watchdog end what it left running.
  child.on('exit', () => child.stdio[watchFd]?.destroy());
  child.on('close', () => {
    liveChildren.delete(pid);
    clearTimeout(killTimer);
    signal.removeEventListener('abort', onAbort);
  });
  return child;
}

/**
 * bash -c WATCHDOG pipeline-watchdog FD COMMAND ARGS...: a background subshell (same process
 * group, deaf to the signals an abort sends) blocks reading FD until its other end closes,
 * then SIGKILLs the group; the shell closes FD and becomes COMMAND (exec keeps the pid).
 */
const WATCHDOG = `fd=$1; shift; ( trap '' INT TERM HUP; read -r -u "$fd" _; kill -KILL 0 ) & eval "exec $fd<&-"; exec "$@"`;

function normalizeStdio(stdio: StdioOptions | undefined): Array<Exclude<StdioOptions, string>[number]> {
  if (Array.isArray(stdio)) return stdio;
  const one = stdio ?? 'pipe';
  return [one, one, one];
}

/** Where the process groups started for a work folder are recorded: "pgid start" lines. */
export function strayProcessFile(workDir: string): string {
  return `${workDir}.processes`;
}

/** Grace period of a stage's own processes between SIGTERM and SIGKILL on abort. */
const STAGE_PROCESS_GRACE_MS = 3000;

/**
 * The local launcher: `node <cli> exec <spec.json>` in its own process group, stdout/stderr
 * into the stage's log file, progress and result over IPC. On abort: SIGTERM to the group,
 * SIGKILL after a grace period.
 */
export function localLauncher(cliPath: string, graceMs = 5000): Launcher {
  return (spec, specFile, onProgress, signal) =>
    new Promise<StageOutputs>((resolve, reject) => {
      writeFileSync(specFile, JSON.stringify(spec));
      const fd = openSync(spec.logFile, 'a');
      const env = { ...(process.env as Record<string, string>), ...spec.env };
      const child = spawnGroup(
        process.execPath,
        [cliPath, 'exec', specFile],
        { stdio: ['ignore', fd, fd, 'ipc'], env },
        signal,
        graceMs,
        spec.workDir,
      );
      closeSync(fd);
      let result: StageOutputs | undefined;
      let failure: string | undefined;
      child.on('message', (m: ChildMessage) => {
        if (m.type === 'progress') onProgress(m.progress);
        else if (m.type === 'result') result = m.outputs;
        else if (m.type === 'error') failure = m.message;
      });
      child.on('error', (e) => {
        failure ??= `could not start the stage process: ${e.message}`;
      });
      child.on('close', (code, sig) => {
        if (signal.aborted) return reject(new Error('interrupted'));
        if (result && code === 0) return resolve(result);
        const how = sig
          ? `killed by ${sig}${sig === 'SIGKILL' ? ' (out of memory?)' : ''}`
          : `exited with code ${code}`;
        reject(new Error(failure ? `${failure} (stage process ${how})` : `stage process ${how}`));
      });
    });
}

/** Runs a light stage inside the runner; its log lines go to the log file. */
export async function runInProcess(
  type: StageType<any>,
  spec: LaunchSpec,
  onProgress: (p: Progress) => void,
  signal: AbortSignal,
): Promise<StageOutputs> {
  const fd = openSync(spec.logFile, 'a');
  try {
    return await type.run(
      stageContext(spec, signal, {
        log: (line) => writeSync(fd, line.endsWith('\n') ? line : `${line}\n`),
        progress: onProgress,
      }),
    );
  } finally {
    closeSync(fd);
  }
}
