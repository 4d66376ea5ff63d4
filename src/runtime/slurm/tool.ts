/** Running one Slurm command (sbatch, squeue, sacct, scancel) and reading its answer. */
import { execFile } from 'node:child_process';
import { constants } from 'node:os';

export interface Answer {
  /** The exit status; 127 when the command could not be started (not installed). */
  code: number;
  stdout: string;
  stderr: string;
}

const TIMEOUT_MS = 60_000;

export function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Answer> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: TIMEOUT_MS, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? exitCode(err) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && code >= 127 ? why(err) : '')) });
    });
  });
}

/** What a command that said nothing died of: "killed by SIGKILL", not node's "Command failed: squeue ...". */
function why(err: Error & { signal?: NodeJS.Signals | null; killed?: boolean }): string {
  if (!err.signal) return err.message;
  return `killed by ${err.signal}${err.killed ? ` (no answer within ${TIMEOUT_MS / 1000} s)` : ''}`;
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
