/**
 * Runs one tool's command and measures what the user waits for: wall-clock from process
 * spawn to exit (interpreter start and module loading included), plus how many stages the
 * command executed, read from the tool's execution log.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';

export interface Command {
  argv: string[];
  cwd: string;
  /** Where the tool's stdout and stderr are appended, for post-mortems. */
  logFile: string;
}

export interface Measurement {
  seconds: number;
  /**
   * User + system CPU seconds of the command and all its children (GNU time), when
   * /usr/bin/time exists: unlike wall-clock, it hardly moves when other work loads the machine.
   */
  cpuSeconds?: number;
  executed: number;
}

const GNU_TIME = '/usr/bin/time';

export function countLines(file: string): number {
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '').length;
}

/** Runs `command` once; throws with the tail of its output if it fails. */
export function measure(command: Command, execLog: string): Measurement {
  const before = countLines(execLog);
  const cpuFile = `${command.logFile}.cpu`;
  const argv = existsSync(GNU_TIME) ? [GNU_TIME, '-f', '%U %S', '-o', cpuFile, ...command.argv] : command.argv;
  rmSync(cpuFile, { force: true });
  const start = process.hrtime.bigint();
  const result = spawnSync(argv[0], argv.slice(1), {
    cwd: command.cwd,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    // No TTY: both tools print plain log lines, as they would in CI.
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
  appendFileSync(command.logFile, `\n$ ${command.argv.join(' ')}\n${output}`);
  if (result.error) throw new Error(`${command.argv[0]} could not start: ${result.error.message}`);
  if (result.status !== 0) {
    throw new Error(
      `\`${command.argv.join(' ')}\` exited ${result.status ?? result.signal} in ${command.cwd}\n` +
        `last output:\n${output.slice(-3000)}\n(full output in ${command.logFile})`,
    );
  }
  return { seconds, cpuSeconds: readCpu(cpuFile), executed: countLines(execLog) - before };
}

function readCpu(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const [user, sys] = readFileSync(file, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
  return Number.isFinite(user) && Number.isFinite(sys) ? user + sys : undefined;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
