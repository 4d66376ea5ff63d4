/**
 * Helpers for runtime tests: throw-away projects (a folder with pipelines/), the real CLI
 * (node dist/src/cli.js) spawned in them, and execution counts kept by the shell commands
 * themselves (each run appends a line to counts/<name>).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** dist/src/cli.js, next to this compiled file's dist/test/runtime/. */
export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli.js');

export interface Project {
  dir: string;
  pipelines: string;
  write(rel: string, text: string): string;
  /** How many times the command tagged `name` ran (see count()). */
  count(name: string): number;
}

export function makeProject(prefix = 'rt-'): Project {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const pipelines = join(dir, 'pipelines');
  mkdirSync(pipelines);
  mkdirSync(join(dir, 'counts'));
  return {
    dir,
    pipelines,
    write(rel, text) {
      const path = join(dir, rel);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
      return path;
    },
    count(name) {
      const f = join(dir, 'counts', name);
      return existsSync(f) ? readFileSync(f, 'utf8').split('\n').filter(Boolean).length : 0;
    },
  };
}

/** Shell snippet that records one execution of `name` (PIPELINE_DIR is <project>/pipelines). */
export function count(name: string): string {
  return `echo x >> $PIPELINE_DIR/../counts/${name}`;
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function startCli(
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd,
    env: { ...process.env, PIPELINE_ARTIFACTS: '', PIPELINE_RESOURCES: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<CliResult>((res) =>
    child.on('close', (code, signal) => res({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

export function cli(args: string[], cwd: string, env: Record<string, string> = {}): Promise<CliResult> {
  return startCli(args, cwd, env).done;
}

export async function waitFor(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting for a condition');
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** `pipeline show ... --json`, parsed; fails with the CLI's stderr if it did not succeed. */
export async function showJson(args: string[], cwd: string): Promise<Record<string, any>> {
  const r = await cli(['show', ...args, '--json'], cwd);
  if (r.code !== 0) throw new Error(`pipeline show ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Whether a process runs: a zombie (killed, not reaped yet) counts as dead. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
