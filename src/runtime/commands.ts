/**
 * The CLI verbs, given parsed options (src/cli.ts only parses arguments). Each returns the
 * process exit code: 0 ok, 1 a stage failed (or `show` of a stage not computed), 2 invalid
 * pipeline or usage, 129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { Artifacts, artifactsRoot, outputPath, type Manifest } from './cache.js';
import { EXIT, PipelineError, PipelineErrors } from './errors.js';
import { missingInputs } from './evaluate.js';
import { formatValue } from './format.js';
import { FileHashMemo, RACY_MS } from './hash.js';
import { sha256 } from '../util/hash.js';
import { killAllChildren, localLauncher, type Launcher } from './launch.js';
import { loadPipeline, shownPath, type Instance, type Pipeline } from './load.js';
import { lockPathFor, readLock } from './lockfile.js';
import { createReporter, type Reporter } from './progress.js';
import { ResourcePool, detectGpus, parseResources } from './resources.js';
import { resolveNames, runPipeline, selectInstances, summarize, type Outcome } from './run.js';
import { explainAll } from './status.js';
import { findPipelineFile } from './project.js';
import { codeDigest, dirListing, lockStat, snapshotArgs, snapshotPath, writeSnapshot } from './noop.js';
import type { Json, StageType } from './stage.js';
import type { NextAction } from './slurm/jobs.js';

export interface Common {
  file: string;
  set: Array<[string, string]>;
  artifacts?: string;
  stageTypes: StageType<any>[];
}

/** Where `status`, `show` and a run find the Slurm profile (its query_timeout, for a run all of it). */
export interface ProfileOpts {
  /** The Slurm profile file (default: $PIPELINE_SLURM_PROFILE, else the profile's defaults). */
  profile?: string;
}

export { findPipelineFile };
export { gcCommand } from './gc.js';

function load(o: Common): Pipeline {
  return loadPipeline({ file: findPipelineFile(o.file), stageTypes: o.stageTypes, set: o.set });
}

function openArtifacts(p: Pipeline | undefined, flag?: string): Artifacts {
  const root = artifactsRoot(p?.file, flag);
  try {
    mkdirSync(root, { recursive: true });
  } catch (e) {
    throw new PipelineError(`cannot use the artifacts folder ${root}: ${(e as Error).message}`);
  }
  return new Artifacts(root);
}

// ---------------------------------------------------------------------------------------------

export interface RunOpts extends Common, ProfileOpts {
  targets: string[];
  /** Default: the number of CPUs, or the Slurm profile's max_jobs. */
  jobs?: number;
  force: string[];
  dryRun: boolean;
  verify: boolean;
  resources?: string;
  progress?: 'tty' | 'plain';
  cliPath: string;
  executor?: 'local' | 'slurm';
}

export async function runCommand(o: RunOpts): Promise<number> {
  const t0 = Date.now();
  const p = load(o);
  const art = openArtifacts(p, o.artifacts);
  const instances = selectInstances(p, o.targets);
  const force = new Set<Instance>(resolveNames(p, o.force, '--force'));
  const lockFile = lockPathFor(p.file);
  if (o.dryRun) return dryRun(p, art, instances, force, lockFile, o.verify, o.executor ?? 'local', o);

  const reporter = createReporter(process.stderr, { tty: o.progress ? o.progress === 'tty' : undefined });
  const { pool, launcher, jobs, close } =
    o.executor === 'slurm' ? await slurmExecution(o, p, reporter) : await localExecution(o, instances, reporter);
  const controller = new AbortController();
  let interruptedBy: NodeJS.Signals | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interruptedBy) {
      // Second signal: no more waiting for stages to wind down.
      killAllChildren('SIGKILL');
      process.exit(exitCodeOf(sig));
    }
    interruptedBy = sig;
    reporter.note(`${sig}: stopping running stages (again to force)`);
    controller.abort(new Error('interrupted'));
  };
  // A closed terminal (SIGHUP) stops the run like Ctrl-C: stages ended, nothing half-committed.
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const sig of signals) process.on(sig, onSignal);
  const memo = new FileHashMemo(join(art.root, 'filehash.json'));
  let outcomes: Outcome[];
  try {
    outcomes = await runPipeline({
      memo,
      pipeline: p,
      art,
      lockFile,
      instances,
      force,
      jobs,
      verify: o.verify,
      pool,
      launcher,
      reporter,
      signal: controller.signal,
    });
  } finally {
    close();
    for (const sig of signals) process.off(sig, onSignal);
  }
  reporter.note(`${p.name}: ${summarize(outcomes, Date.now() - t0)}`);
  reporter.close();
  if (interruptedBy) return exitCodeOf(interruptedBy);
  const failed = outcomes.filter((x) => x.status === 'failed');
  const results = failed.length ? [] : resultLines(art, outcomes);
  if (outcomes.every((x) => x.key) && !o.force.length && !o.verify)
    saveNoopSnapshot(o, p, art, memo, lockFile, outcomes, results);
  for (const f of failed)
    process.stderr.write(`FAILED ${f.instance.name}: ${f.error}${f.logFile ? `\n  log: ${f.logFile}` : ''}\n`);
  if (results.length) process.stderr.write(results.join('\n') + '\n');
  return failed.length ? EXIT.stageFailed : EXIT.ok;
}

/** 128 + the signal's number, as shells report a command a signal ended. */
function exitCodeOf(sig: NodeJS.Signals): number {
  return sig === 'SIGINT' ? EXIT.sigint : sig === 'SIGHUP' ? EXIT.sighup : EXIT.sigterm;
}

interface Execution {
  pool: ResourcePool;
  launcher: Launcher;
  jobs: number;
  close(): void;
}

/**
 * Heavy stages as child processes of this runner, within this machine's resources. A stage
 * whose entry has a batch job an earlier Slurm run left queued or running waits for that job
 * rather than racing it (slurm/adopt.ts); the profile, if any, says how often to ask Slurm.
 */
async function localExecution(o: RunOpts, instances: Instance[], reporter: Reporter): Promise<Execution> {
  const capacity = {
    ...parseResources(process.env.PIPELINE_RESOURCES, '$PIPELINE_RESOURCES'),
    ...parseResources(o.resources, '--resources'),
  };
  const wantsGpu = instances.some((i) => (i.resources.gpu ?? 0) > 0);
  const pool = new ResourcePool(capacity, wantsGpu && capacity.gpu === undefined ? detectGpus() : []);
  for (const i of instances) pool.check(i.name, i.resources);
  const [{ neverRacing }, { readProfile }, { QueuePoller }] = await Promise.all([
    import('./slurm/adopt.js'),
    import('./slurm/profile.js'),
    import('./slurm/watch.js'),
  ]);
  let poller: InstanceType<typeof QueuePoller> | undefined;
  const note = (line: string) => reporter.note(line);
  // Made at the first job to wait for: a local run with none reads no profile.
  const watcher = () => (poller ??= QueuePoller.of(readProfile(profileFile(o)), note));
  return {
    pool,
    launcher: neverRacing(localLauncher(o.cliPath), { poller: watcher, note }),
    jobs: o.jobs ?? availableParallelism(),
    close: () => poller?.stop(),
  };
}

/** The Slurm profile's file: --profile, else $PIPELINE_SLURM_PROFILE, else none (the defaults). */
function profileFile(o: ProfileOpts): string | undefined {
  return o.profile ?? (process.env.PIPELINE_SLURM_PROFILE || undefined);
}

/** Heavy stages as Slurm jobs: Slurm counts the resources, the profile says how to ask. */
async function slurmExecution(o: RunOpts, p: Pipeline, reporter: Reporter): Promise<Execution> {
  const { readProfile } = await import('./slurm/profile.js');
  const { SlurmExecutor } = await import('./slurm/executor.js');
  const profile = readProfile(profileFile(o));
  if (spawnSync('sbatch', ['--version'], { encoding: 'utf8' }).status !== 0) {
    throw new PipelineError('--executor slurm: sbatch is not available on this machine (run from a Slurm login node)');
  }
  const executor = new SlurmExecutor({
    profile,
    cliPath: o.cliPath,
    pipelineName: p.name,
    note: (line) => reporter.note(line),
  });
  return {
    pool: ResourcePool.unlimited(),
    launcher: executor.launcher,
    jobs: o.jobs ?? profile.max_jobs,
    close: () => executor.close(),
  };
}

/**
 * After a complete run: what the next identical `run` needs to answer "nothing changed" from
 * stats alone. None while an input is racily fresh (see RACY_MS): its stats cannot vouch for it.
 */
function saveNoopSnapshot(
  o: RunOpts,
  p: Pipeline,
  art: Artifacts,
  memo: FileHashMemo,
  lockFile: string,
  outcomes: Array<{ instance: Instance; key?: string }>,
  results: string[],
): void {
  const dirs = [...memo.seenDirs].map((d) => ({ dir: d, ...dirListing(d) }));
  const newest = Math.max(
    0,
    ...[...memo.seenFiles.values()].map(([, mtimeMs]) => mtimeMs),
    ...dirs.map((d) => d.newestMtimeMs),
  );
  if (Date.now() - newest <= RACY_MS) return;
  const snapshot: Parameters<typeof writeSnapshot>[1] = {
    format: 'pipeline-noop/1',
    pipeline: p.name,
    files: p.sourceFiles.map((f): [string, string] => [f, sha256(readFileSync(f))]),
    code: codeDigest(dirname(o.cliPath)),
    lock: lockStat(lockFile),
    inputs: [...memo.seenFiles].map(([f, [size, mtime]]): [string, number, number] => [f, size, mtime]),
    dirs: dirs.map((d): [string, string] => [d.dir, d.digest]),
    instances: outcomes.map((x): [string, string] => [x.instance.name, x.key!]),
    results,
  };
  try {
    writeSnapshot(snapshotPath(art, p.file, snapshotArgs(o)), snapshot);
  } catch {
    // Only a shortcut for the next run (a full disk, say): that run then checks every key.
  }
}

/**
 * Where the results are: the file/dir outputs of the instances nothing else consumes (the
 * DAG's sinks, e.g. a report), so a run ends by saying what to open.
 */
function resultLines(art: Artifacts, outcomes: Array<{ instance: Instance; key?: string }>): string[] {
  const consumed = new Set(outcomes.flatMap((o) => o.instance.deps));
  const lines: string[] = [];
  for (const o of outcomes) {
    if (consumed.has(o.instance) || !o.key) continue;
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(art.entryDir(o.key), 'manifest.json'), 'utf8'));
    } catch {
      continue;
    }
    for (const [name, out] of Object.entries(manifest.outputs)) {
      if (out.path !== undefined) lines.push(`${o.instance.name}.${name}: ${outputPath(art, o.key, out.path)}`);
    }
  }
  return lines;
}

async function dryRun(
  p: Pipeline,
  art: Artifacts,
  instances: Instance[],
  force: Set<Instance>,
  lockFile: string,
  verify: boolean,
  executor: 'local' | 'slurm',
  profile: ProfileOpts,
): Promise<number> {
  const memo = new FileHashMemo(join(art.root, 'filehash.json'));
  const { explained } = await explainAll(p, art, memo, readLock(lockFile)?.instances ?? {}, instances, verify);
  memo.save();
  // A run adopts the job an earlier run left for an entry rather than computing it again.
  const jobs = await recordedJobs(
    art,
    explained.filter((e) => e.state !== 'cached'),
    profile,
  );
  let n = 0;
  for (const e of explained) {
    const forced = force.has(e.instance);
    if (e.state === 'cached' && !forced) {
      console.log(`cached     ${e.instance.name}`);
      continue;
    }
    n++;
    const job = e.key ? jobs.get(e.key) : undefined;
    if (job) {
      console.log(`${jobVerb(job.next.action, executor).padEnd(9)}  ${e.instance.name}: ${job.text}`);
      continue;
    }
    const why = forced ? ['--force', ...e.reasons] : e.reasons;
    const verb = e.state === 'blocked' ? 'maybe run' : e.state === 'error' ? 'invalid  ' : 'would run';
    console.log(`${verb}  ${e.instance.name}: ${why.join('; ')}`);
  }
  console.log(`dry run: ${n} of ${explained.length} instances would (or may) run; nothing was run`);
  return EXIT.ok;
}

/** What a run with this executor does with an instance's recorded job, in one word (slurm/jobs.ts). */
function jobVerb(action: NextAction, executor: 'local' | 'slurm'): string {
  switch (action) {
    case 'wait':
    case 'ask':
      return 'adopt';
    case 'collect':
      return 'collect';
    case 'resubmit':
      // A local run submits nothing: it runs the stage itself (slurm/adopt.ts).
      return executor === 'slurm' ? 'resubmit' : 'would run';
    case 'fail':
      return 'fail';
    case 'refuse':
      return 'refuse';
  }
}

// ---------------------------------------------------------------------------------------------

export async function statusCommand(o: Common & ProfileOpts & { json: boolean; verify: boolean }): Promise<number> {
  const p = load(o);
  const art = openArtifacts(p, o.artifacts);
  const memo = new FileHashMemo(join(art.root, 'filehash.json'));
  const { explained } = await explainAll(
    p,
    art,
    memo,
    readLock(lockPathFor(p.file))?.instances ?? {},
    p.instances,
    o.verify,
  );
  memo.save();
  const jobs = await recordedJobs(
    art,
    explained.filter((e) => e.state !== 'cached'),
    o,
  );
  if (o.json) {
    const out = {
      pipeline: p.name,
      file: p.file,
      instances: explained.map((e) => {
        const job = e.key ? jobs.get(e.key) : undefined;
        const slurm = job && {
          id: job.record.jobId,
          state: job.state ?? job.label,
          node: job.node ?? null,
          reason: job.reason ?? null,
          next: job.next.action,
          nextText: job.next.text,
        };
        return {
          name: e.instance.name,
          stage: e.instance.stage.id,
          uses: e.instance.stage.type.name,
          state: e.state,
          reasons: e.reasons,
          key: e.key ?? null,
          ...(slurm ? { job: slurm } : {}),
        };
      }),
    };
    console.log(JSON.stringify(out, null, 2));
    return EXIT.ok;
  }
  const width = Math.max(...explained.map((e) => e.instance.name.length));
  for (const e of explained) {
    const job = e.key ? jobs.get(e.key) : undefined;
    const label = job && job.label !== 'unknown' ? job.label : e.state === 'blocked' ? 'pending' : e.state;
    const reasons = job ? [job.text] : e.reasons;
    console.log(
      `${label.padEnd(8)} ${e.instance.name.padEnd(width)}${reasons.length ? `  ${reasons.join('; ')}` : ''}`,
    );
  }
  const stale = explained.filter((e) => e.state !== 'cached').length;
  console.log(
    stale ? `${stale} of ${explained.length} instances need to run` : `all ${explained.length} instances cached`,
  );
  return EXIT.ok;
}

/** Slurm jobs that a run (here or elsewhere) recorded for these instances and has not collected. */
async function recordedJobs(art: Artifacts, of: Array<{ key?: string }>, o: ProfileOpts) {
  const dirs = new Map(
    of.filter((e) => e.key && existsSync(join(art.workDir(e.key), '.slurm'))).map((e) => [e.key!, art.workDir(e.key!)]),
  );
  if (!dirs.size) return new Map<string, import('./slurm/jobs.js').JobInProgress>();
  // Read only when there is a job to ask Slurm about: a project without any needs no profile.
  const { readProfile } = await import('./slurm/profile.js');
  const queryTimeoutMs = readProfile(profileFile(o)).query_timeout * 1000;
  return (await import('./slurm/jobs.js')).jobsInProgress(dirs, queryTimeoutMs);
}

// ---------------------------------------------------------------------------------------------

export async function showCommand(o: Common & ProfileOpts & { stage: string; json: boolean }): Promise<number> {
  const p = load(o);
  const art = openArtifacts(p, o.artifacts);
  const targets = resolveNames(p, [o.stage], 'stage');
  const memo = new FileHashMemo(join(art.root, 'filehash.json'));
  const { explained, results } = await explainAll(
    p,
    art,
    memo,
    readLock(lockPathFor(p.file))?.instances ?? {},
    selectInstances(p, [o.stage]),
  );
  memo.save();
  const missing = explained.filter((e) => targets.includes(e.instance) && e.state !== 'cached');
  if (missing.length) {
    const jobs = await recordedJobs(art, missing, o);
    for (const m of missing) {
      const job = m.key ? jobs.get(m.key) : undefined;
      // A job that has ended is no longer in progress: its line says how it ended and what next.
      const why = !job
        ? m.reasons.join('; ')
        : job.label === 'queued' || job.label === 'running'
          ? `in progress elsewhere, ${job.text}`
          : job.text;
      process.stderr.write(`${m.instance.name} is not computed: ${why}\n`);
    }
    process.stderr.write(`run: ${runCommandLine(p, o)}\n`);
    return EXIT.stageFailed;
  }
  const valuesOf = (i: Instance): Record<string, Json> =>
    Object.fromEntries(Object.entries(results.get(i)!.outputs).map(([k, v]) => [k, v.run]));
  // A matrix stage's outputs are keyed by instance; a single instance's are not.
  const keyed = (p.stages.get(o.stage)?.matrixKeys.length ?? 0) > 0;
  const out: Record<string, Json> = keyed
    ? Object.fromEntries(targets.map((i) => [i.name, valuesOf(i)]))
    : valuesOf(targets[0]);
  if (o.json) {
    console.log(JSON.stringify(out, null, 2));
    return EXIT.ok;
  }
  const print = (obj: Record<string, Json>, indent: string) => {
    for (const [k, v] of Object.entries(obj))
      console.log(`${indent}${k}: ${typeof v === 'object' && v !== null ? JSON.stringify(v) : formatValue(v)}`);
  };
  if (keyed) {
    for (const i of targets) {
      console.log(`${i.name}:`);
      print(valuesOf(i), '  ');
    }
  } else print(out, '');
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------

/**
 * The `pipeline run` that computes what `show` was asked for: the same params and artifacts
 * folder (without them it would compute, or find, another entry), each word quoted for bash.
 */
function runCommandLine(p: Pipeline, o: Common & { stage: string }): string {
  const words = [shownPath(p.file), o.stage, ...o.set.flatMap(([k, v]) => ['--set', `${k}=${v}`])];
  if (o.artifacts) words.push('--artifacts', o.artifacts);
  return `pipeline run ${words.map(shellWord).join(' ')}`;
}

/** A word as bash reads it back: as is when plain, else in single quotes. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_/.,:=@%+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function count(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

export function validateCommand(o: Common): number {
  const p = load(o);
  const missing = missingInputs(p);
  if (missing.length) throw new PipelineErrors(missing);
  console.log(
    `ok: ${shownPath(p.file)}: pipeline ${p.name}, ${count(p.stages.size, 'stage')}, ` +
      `${count(p.instances.length, 'instance')}`,
  );
  return EXIT.ok;
}

export function dagCommand(o: Common & { format: 'text' | 'mermaid' | 'dot' }): number {
  const p = load(o);
  const order: string[] = [];
  for (const i of p.instances) if (!order.includes(i.stage.id)) order.push(i.stage.id);
  const depsOf = (id: string) => {
    const s = new Set<string>();
    for (const i of p.stages.get(id)!.instances) for (const d of i.deps) s.add(d.stage.id);
    return [...s];
  };
  const label = (id: string) => {
    const node = p.stages.get(id)!;
    const n = node.instances.length;
    return `${id} (${node.type.name}${n > 1 ? ` x${n}` : ''})`;
  };
  if (o.format === 'mermaid') {
    console.log('graph TD');
    for (const id of order) console.log(`  ${id}["${label(id)}"]`);
    for (const id of order) for (const d of depsOf(id)) console.log(`  ${d} --> ${id}`);
  } else if (o.format === 'dot') {
    console.log(`digraph "${p.name}" {\n  rankdir=TB;\n  node [shape=box];`);
    for (const id of order) console.log(`  "${id}" [label="${label(id)}"];`);
    for (const id of order) for (const d of depsOf(id)) console.log(`  "${d}" -> "${id}";`);
    console.log('}');
  } else {
    for (const id of order) {
      const deps = depsOf(id);
      console.log(`${label(id)}${deps.length ? ` <- ${deps.join(', ')}` : ''}`);
      const node = p.stages.get(id)!;
      if (node.instances.length > 1) for (const i of node.instances) console.log(`    ${i.name}`);
    }
  }
  return EXIT.ok;
}

// ---------------------------------------------------------------------------------------------
