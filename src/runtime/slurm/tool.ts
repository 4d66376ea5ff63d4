/** Running one Slurm command (sbatch, squeue, sacct, scancel) and reading its answer. */
import { execFile } from 'node:child_process';

export interface Answer {
  /** The exit status; 127 when the command could not be started (not installed). */
  code: number;
  stdout: string;
  stderr: string;
}

export function runTool(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Answer> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 60_000, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 127) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr || (err && code === 127 ? err.message : '')) });
    });
  });
}
