/** Running one Slurm command (sbatch, squeue, sacct, scancel) and reading its answer. */
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

export interface Answer {
  /** The exit status; 127 when the command could not be started (not installed). */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ToolOptions {
  env?: NodeJS.ProcessEnv;
  /** How long the command may take before it is killed (a failure to ask again, not an answer). */
  timeoutMs?: number;
}

/** sbatch and scancel wait this long on a busy controller; queries have their own (profile query_timeout). */
const DEFAULT_TIMEOUT_MS = 60_000;

export function runTool(cmd: string, args: string[], o: ToolOptions = {}): Promise<Answer> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve) => {
    // Its own process group, killed whole at the timeout: a site's wrapper script killed alone
    // would leave its children holding the pipes open, and the answer would never come.
    const child = spawn(cmd, args, { env: o.env ?? process.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child.pid);
    }, timeoutMs);
    // Not started (not installed, not executable): 127, as a shell says.
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, stdout, stderr: stderr || e.message });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code !== null) return resolve({ code, stdout, stderr });
      // Killed: no exit status, but a failure to ask again (not "not installed"): 128 + the
      // signal, as a shell says, and what it died of when it said nothing.
      const died = `killed by ${signal}${timedOut ? ` (no answer within ${timeoutMs / 1000} s)` : ''}`;
      resolve({
        code: 128 + (constants.signals[signal as NodeJS.Signals] ?? 0),
        stdout,
        stderr: timedOut ? [died, stderr.trim()].filter(Boolean).join(': ') : stderr || died,
      });
    });
  });
}

function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}
