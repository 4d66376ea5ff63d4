/**
 * Runtime benchmark (issue 2 item 10; not run in CI):
 *
 *   npx tsc -p . && node dist/bench/runtime.js [--stages 200] [--repeats 5] [--jobs 2]
 *                                            [--profile] [--no-snakemake] [--keep]
 *
 * Generates a pipeline of N trivial shell stages and an equivalent Snakefile (same
 * commands, same DAG, one param per stage; see runtime/generate.ts), then measures for
 * each tool, in the same process and interleaved so machine load hits both alike:
 *   cold       empty cache, every stage runs (once)
 *   no-op      everything cached (median of --repeats)
 *   one-param  one stage's param changed to a fresh value: that stage and its
 *              dependents re-run (median of --repeats; each repeat a new value)
 * Wall-clock of the whole command, process start included, and its CPU time (user+sys,
 * children included; steadier than wall on a shared machine). Snakemake runs with
 * `--cores J` and its default rerun triggers (7.21: mtime, params, input, software-env,
 * code), so a changed config value re-runs the rule, as `--set` does for ours.
 * `--profile` (also done automatically when the no-op misses its target) runs our
 * no-op once more under `node --cpu-prof` and prints where the time goes; the step-by-step
 * lines (interpreter, imports, validate, run) say the same by subtraction.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { coneBelow, generate, paramName, stageName, type Workload } from './runtime/generate.js';
import { measure, median, type Command, type Measurement } from './runtime/measure.js';
import { formatSummary, summariseFile } from './runtime/profile.js';

const NOOP_TARGET_S = 0.5;
const RATIO_TARGET = 5;
const WIDTH = 10;

interface Options {
  stages: number;
  repeats: number;
  jobs: number;
  profile: boolean;
  snakemake: boolean;
  keep: boolean;
}

function parseOptions(argv: string[]): Options {
  const opts: Options = { stages: 200, repeats: 5, jobs: 2, profile: false, snakemake: true, keep: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} needs a positive integer, got '${argv[i]}'`);
      return n;
    };
    if (flag === '--stages') opts.stages = value();
    else if (flag === '--repeats') opts.repeats = value();
    else if (flag === '--jobs') opts.jobs = value();
    else if (flag === '--profile') opts.profile = true;
    else if (flag === '--no-snakemake') opts.snakemake = false;
    else if (flag === '--keep') opts.keep = true;
    else throw new Error(`unknown option '${flag}' (see the comment at the top of bench/runtime.ts)`);
  }
  if (opts.stages % WIDTH !== 0)
    throw new Error(`--stages must be a multiple of ${WIDTH} (layers of ${WIDTH}), got ${opts.stages}`);
  return opts;
}

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Set by snapshotRuntime(): the CLI the whole benchmark runs. */
let runtimeRoot = projectRoot;
let cliPath = join(projectRoot, 'dist', 'src', 'cli.js');

/**
 * Copies the built runtime (dist/src, package.json; node_modules linked) into the bench
 * folder and runs that copy: other people rebuilding dist/ mid-benchmark cannot break it.
 */
function snapshotRuntime(root: string): void {
  runtimeRoot = join(root, 'runtime');
  cpSync(join(projectRoot, 'dist', 'src'), join(runtimeRoot, 'dist', 'src'), { recursive: true });
  cpSync(join(projectRoot, 'package.json'), join(runtimeRoot, 'package.json'));
  symlinkSync(join(projectRoot, 'node_modules'), join(runtimeRoot, 'node_modules'));
  cliPath = join(runtimeRoot, 'dist', 'src', 'cli.js');
}

/** What one tool is asked to do in each scenario. */
interface Tool {
  name: string;
  execLog: string;
  run(set?: [string, number]): Command;
}

function ours(w: Workload, root: string, jobs: number, nodeFlags: string[] = []): Tool {
  return {
    name: 'ours',
    execLog: w.oursExecLog,
    run: (set) => ({
      argv: [
        process.execPath,
        ...nodeFlags,
        cliPath,
        'run',
        w.pipelineFile,
        '--jobs',
        String(jobs),
        '--artifacts',
        join(root, 'artifacts'),
        ...(set ? ['--set', `${set[0]}=${set[1]}`] : []),
      ],
      cwd: w.oursDir,
      logFile: join(root, 'ours-output.log'),
    }),
  };
}

function snakemake(w: Workload, root: string, jobs: number): Tool {
  return {
    name: 'snakemake',
    execLog: w.snakeExecLog,
    run: (set) => ({
      argv: [
        'snakemake',
        '--cores',
        String(jobs),
        '--snakefile',
        'Snakefile',
        ...(set ? ['--config', `${set[0]}=${set[1]}`] : []),
      ],
      cwd: w.snakeDir,
      logFile: join(root, 'snakemake-output.log'),
    }),
  };
}

function snakemakeVersion(): string | undefined {
  const r = spawnSync('snakemake', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** Runs every tool once per repeat, interleaved; returns per tool the list of measurements. */
function scenario(tools: Tool[], repeats: number, set?: (repeat: number) => [string, number]): Measurement[][] {
  const results: Measurement[][] = tools.map(() => []);
  for (let r = 0; r < repeats; r++) {
    tools.forEach((tool, t) => results[t].push(measure(tool.run(set?.(r)), tool.execLog)));
  }
  return results;
}

interface Row {
  scenario: string;
  perTool: Measurement[][];
}

function summary(ms: Measurement[]): { seconds: number; cpu: string; executed: string } {
  const counts = [...new Set(ms.map((m) => m.executed))];
  const cpu = ms.every((m) => m.cpuSeconds !== undefined) ? median(ms.map((m) => m.cpuSeconds!)).toFixed(2) : '?';
  return { seconds: median(ms.map((m) => m.seconds)), cpu, executed: counts.join('/') };
}

function printTable(rows: Row[], withSnake: boolean): void {
  const header = withSnake
    ? [
        'scenario',
        'ours (s)',
        'snakemake (s)',
        'ratio snk/ours',
        'ran: ours',
        'ran: snakemake',
        'cpu s: ours',
        'cpu s: snakemake',
      ]
    : ['scenario', 'ours (s)', 'ran: ours', 'cpu s: ours'];
  const lines = rows.map((row) => {
    const [o, s] = row.perTool.map(summary);
    return withSnake
      ? [
          row.scenario,
          o.seconds.toFixed(3),
          s.seconds.toFixed(3),
          (s.seconds / o.seconds).toFixed(1) + 'x',
          o.executed,
          s.executed,
          o.cpu,
          s.cpu,
        ]
      : [row.scenario, o.seconds.toFixed(3), o.executed, o.cpu];
  });
  const widths = header.map((h, c) => Math.max(h.length, ...lines.map((l) => l[c].length)));
  const fmt = (cells: string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  lines.forEach((l) => console.log(fmt(l)));
}

/**
 * Where our no-op's time goes, by subtraction of nested commands (wall and CPU medians):
 * interpreter start; + loading the CLI's modules (runtime and every stage type);
 * + `pipeline validate` (YAML parse with positions, schemas, references, expansion);
 * + the no-op run itself (cache lookups, lock file, progress lines). Python's start is the
 * floor under any Snakemake run.
 */
function noopBreakdown(w: Workload, root: string, jobs: number, repeats: number): void {
  const logFile = join(root, 'breakdown.log');
  const none = join(root, 'no-exec-log');
  const time = (argv: string[], cwd = root) => {
    const ms = Array.from({ length: repeats }, () => measure({ argv, cwd, logFile }, none));
    return summary(ms);
  };
  const importAll =
    `await import(${JSON.stringify(join(runtimeRoot, 'dist/src/runtime/commands.js'))}); ` +
    `await import(${JSON.stringify(join(runtimeRoot, 'dist/src/stages/index.js'))})`;
  const steps: Array<[string, ReturnType<typeof summary>]> = [
    ['python3 -c pass (floor under snakemake)', time(['python3', '-c', 'pass'])],
    ['node -e 0 (interpreter start)', time([process.execPath, '-e', '0'])],
    ['+ import runtime and all stage types', time([process.execPath, '--input-type=module', '-e', importAll])],
    [
      '+ pipeline validate (YAML, schemas, refs)',
      time([process.execPath, cliPath, 'validate', w.pipelineFile], w.oursDir),
    ],
    ['+ cache check, lock file (= no-op run)', time(ours(w, root, jobs).run().argv, w.oursDir)],
  ];
  console.log(`\nour no-op, step by step (each line includes the ones above it; median of ${repeats}):`);
  const width = Math.max(...steps.map(([label]) => label.length));
  for (const [label, s] of steps)
    console.log(`  ${label.padEnd(width)}  wall ${s.seconds.toFixed(3)} s  cpu ${s.cpu} s`);
}

/** The final output of the last stage, read from each tool, to check both did the same work. */
function sameResult(w: Workload, root: string, set?: [string, number]): string {
  const last = stageName(w.shape.layers - 1, 0);
  const show = spawnSync(
    process.execPath,
    [
      cliPath,
      'show',
      w.pipelineFile,
      last,
      '--json',
      '--artifacts',
      join(root, 'artifacts'),
      ...(set ? ['--set', `${set[0]}=${set[1]}`] : []),
    ],
    { cwd: w.oursDir, encoding: 'utf8' },
  );
  if (show.status !== 0)
    return `could not check (pipeline show exited ${show.status}: ${show.stderr.trim().split('\n')[0]})`;
  const shown = JSON.parse(show.stdout) as Record<string, unknown>;
  const path = JSON.stringify(shown).match(/"(\/[^"]*out\.txt)"/)?.[1];
  if (!path) return `could not check (no out.txt path in: ${show.stdout.trim().slice(0, 200)})`;
  const a = readFileSync(path, 'utf8');
  const b = readFileSync(join(w.snakeDir, 'results', `${last}.txt`), 'utf8');
  return a === b ? `identical (${last}: ${a.trim()})` : `DIFFERENT: ours ${a.trim()} vs snakemake ${b.trim()}`;
}

function profileNoop(w: Workload, root: string, jobs: number): void {
  const dir = join(root, 'cpu-prof');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  const tool = ours(w, root, jobs, ['--cpu-prof', '--cpu-prof-dir', dir]);
  const m = measure(tool.run(), tool.execLog);
  const file = readdirProfile(dir);
  console.log(`\nprofile of our no-op (${m.seconds.toFixed(3)} s wall under the profiler, ${m.executed} ran): ${file}`);
  console.log(formatSummary(summariseFile(file)));
}

function readdirProfile(dir: string): string {
  const name = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!name) throw new Error(`node --cpu-prof wrote no profile in ${dir}`);
  return join(dir, name);
}

function main(): void {
  const opts = parseOptions(process.argv.slice(2));
  const version = opts.snakemake ? snakemakeVersion() : undefined;
  const root = mkdtempSync(join(tmpdir(), 'runtime-bench-'));
  snapshotRuntime(root);
  const w = generate(root, { layers: opts.stages / WIDTH, width: WIDTH });
  const tools = [ours(w, root, opts.jobs)];
  if (version) tools.push(snakemake(w, root, opts.jobs));

  console.log(
    `runtime benchmark: ${opts.stages} shell stages (${w.shape.layers} layers of ${WIDTH}, each reads 2 ` +
      `of the layer above), --jobs ${opts.jobs}, in ${root}`,
  );
  console.log(
    version
      ? `snakemake ${version} with --cores ${opts.jobs}, default rerun triggers`
      : opts.snakemake
        ? 'snakemake NOT FOUND on PATH (apt-get install snakemake): ours alone'
        : 'snakemake skipped (--no-snakemake): ours alone',
  );
  console.log(
    `machine: ${cpus().length} cores shared with other work (load average now ` +
      `${loadavg()[0].toFixed(1)}); times are wall-clock of the whole command,`,
  );
  console.log('process start included (median); cpu s = user+sys CPU of the command and its children (median)\n');

  const changedLayer = Math.floor(w.shape.layers / 2);
  const changed = paramName(changedLayer, 0);
  const cone = coneBelow(w.shape, changedLayer, 0).size;
  const rows: Row[] = [];
  rows.push({ scenario: 'cold (empty cache)', perTool: scenario(tools, 1) });
  const coldCheck = version ? sameResult(w, root) : undefined;
  rows.push({ scenario: `no-op (median of ${opts.repeats})`, perTool: scenario(tools, opts.repeats) });
  let lastSet: [string, number] | undefined;
  const oneParam = scenario(tools, opts.repeats, (r) => (lastSet = [changed, w.params[changed] + 100000 * (r + 1)]));
  rows.push({ scenario: `one-param ${changed} (median of ${opts.repeats})`, perTool: oneParam });

  printTable(rows, version !== undefined);
  console.log(
    `\nexpected re-runs after changing ${changed}: ${cone} (${stageName(changedLayer, 0)} and its dependents)`,
  );
  if (coldCheck) console.log(`last stage's output after the cold run, ours vs snakemake: ${coldCheck}`);
  if (version) console.log(`same after the last one-param run: ${sameResult(w, root, lastSet)}`);
  noopBreakdown(w, root, opts.jobs, opts.repeats);

  const noop = summary(rows[1].perTool[0]).seconds;
  const ratio = version ? summary(rows[1].perTool[1]).seconds / noop : undefined;
  console.log(
    `\ntargets: our no-op < ${NOOP_TARGET_S} s: ${noop < NOOP_TARGET_S ? 'MET' : 'MISSED'} (${noop.toFixed(3)} s)` +
      (ratio === undefined
        ? ''
        : `; >= ${RATIO_TARGET}x faster than snakemake's no-op: ${ratio >= RATIO_TARGET ? 'MET' : 'MISSED'} (${ratio.toFixed(1)}x)`),
  );
  if (opts.profile || noop >= NOOP_TARGET_S || (ratio !== undefined && ratio < RATIO_TARGET))
    profileNoop(w, root, opts.jobs);

  console.log(`\nload average at the end: ${loadavg()[0].toFixed(1)}`);
  if (opts.keep) console.log(`\nkept ${root}`);
  else rmSync(root, { recursive: true, force: true });
}

try {
  main();
} catch (e) {
  console.error(`runtime bench: ${(e as Error).message}`);
  process.exit(1);
}
