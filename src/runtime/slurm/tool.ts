/** Running one Slurm command (sbatch, squeue, sacct, scancel) and reading its answer. */
import { execFile } from 'node:child_process';
import { constants } from 'node:os';

export interface Answer {
  /** The exit status; 127 when the command could not be started (not installed). */
  code: number;
  stdout: string;
  stderr: string;
}

export function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Answer> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? exitCode(err) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && code >= 127 ? err.message : '')) });
    });
  });
}

/**
 * 127 only when the command could not be started: callers read it as "not installed" (no
 * accounting for good, no squeue to watch a job). A command killed by the timeout or a signal
 * has no exit status either, but is a failure to ask again: 128 + the signal, as a shell says.
 */
function exitCode(err: Error & { code?: unknown; signal?: NodeJS.Signals | null }): number {
  if (typeof err.code === 'number') return err.code;
  if (err.signal) return 128 + (constants.signals[err.signal] ?? 0);
  return 127;
}
