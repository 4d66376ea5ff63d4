/**
 * The demo from an empty cache, one training backend against another:
 *
 *   npx tsc -p . && node dist/bench/demo.js [--pipeline pipelines/demo.yaml] [--backends native,wasm]
 *                                           [--rounds 2] [--jobs 2] [--keep]
 *
 * Each round runs the whole pipeline once per backend (`--set backend=B`, its own empty
 * artifacts folder), interleaved so that load hits every backend alike, then reads the final
 * SAE's held-out metrics with `pipeline show`: a faster backend must give the same science
 * (final FVU and L0 within noise), not only a smaller number. Prints wall-clock (process start
 * included, what the user waits for), CPU seconds, the final metrics, and each backend's
 * median time as a ratio to the last backend's (the reference: wasm by default).
 * Run on a quiet machine; `uptime` is printed before and after.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { measure, median } from './runtime/measure.js';
import { lockPathFor } from '../src/runtime/lockfile.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const cli = join(root, 'bin', 'pipeline.js');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

interface FinalMetrics {
  fvu: number;
  l0: number;
  recovered: number | null;
}

/** The final SAE's held-out metrics, read back through the CLI as a user would. */
function finalMetrics(pipeline: string, artifacts: string, backend: string): FinalMetrics {
  const shown = spawnSync(
    process.execPath,
    [cli, 'show', pipeline, 'final', '--json', '--artifacts', artifacts, '--set', `backend=${backend}`],
    { cwd: root, encoding: 'utf8' },
  );
  if (shown.status !== 0) throw new Error(`pipeline show final failed:\n${shown.stderr}`);
  const held = (JSON.parse(shown.stdout).eval ?? {}) as Record<string, number | null>;
  return {
    fvu: held.fvu ?? Number.NaN,
    l0: held.l0 ?? Number.NaN,
    recovered: held.recovery_frac_above_0_9 ?? null,
  };
}

function main() {
  const pipeline = resolve(arg('pipeline', join(root, 'pipelines', 'demo.yaml')));
  const backends = arg('backends', 'native,wasm').split(',');
  const rounds = Number(arg('rounds', '2'));
  const jobs = arg('jobs', '2');
  const scratch = mkdtempSync(join(tmpdir(), 'bench-demo-'));
  const logFile = join(scratch, 'pipeline.log');
  const seconds: Record<string, number[]> = Object.fromEntries(backends.map((b) => [b, []]));
  console.log(
    `pipeline ${pipeline}; ${rounds} round(s), --jobs ${jobs}; load ${loadavg()[0].toFixed(2)}; log ${logFile}`,
  );
  // Every run rewrites the lock file beside the pipeline (with its --set backend): a benchmark
  // must leave the committed one as it found it.
  const lockPath = lockPathFor(pipeline);
  const lockBefore = existsSync(lockPath) ? readFileSync(lockPath) : undefined;
  try {
    runRounds(pipeline, backends, rounds, jobs, scratch, logFile, seconds);
  } finally {
    if (lockBefore) writeFileSync(lockPath, lockBefore);
    else rmSync(lockPath, { force: true });
  }
  const reference = backends[backends.length - 1];
  for (const backend of backends) {
    const ratio = median(seconds[reference]) / median(seconds[backend]);
    console.log(
      `${backend}: median ${median(seconds[backend]).toFixed(1)} s; ${ratio.toFixed(2)}x faster than ${reference}`,
    );
  }
  console.log(`load after: ${loadavg()[0].toFixed(2)}`);
  if (!process.argv.includes('--keep')) rmSync(scratch, { recursive: true, force: true });
}

function runRounds(
  pipeline: string,
  backends: string[],
  rounds: number,
  jobs: string,
  scratch: string,
  logFile: string,
  seconds: Record<string, number[]>,
) {
  console.log('round  backend   wall s   cpu s   final FVU  final L0  recovered (max cos > 0.9)');
  for (let r = 0; r < rounds; r++) {
    for (const backend of backends) {
      const artifacts = join(scratch, `artifacts-${backend}`);
      rmSync(artifacts, { recursive: true, force: true });
      const argv = [process.execPath, cli, 'run', pipeline, '--artifacts', artifacts, '--jobs', jobs];
      const m = measure(
        { argv: [...argv, '--set', `backend=${backend}`, '--progress', 'plain'], cwd: root, logFile },
        '',
      );
      seconds[backend].push(m.seconds);
      const f = finalMetrics(pipeline, artifacts, backend);
      console.log(
        `${String(r + 1).padStart(5)}  ${backend.padEnd(8)} ${m.seconds.toFixed(1).padStart(7)} ` +
          `${(m.cpuSeconds ?? Number.NaN).toFixed(1).padStart(7)}  ${f.fvu.toFixed(4).padStart(9)} ` +
          `${f.l0.toFixed(3).padStart(9)}  ${f.recovered === null ? '-' : f.recovered.toFixed(3)}`,
      );
    }
  }
}

main();
