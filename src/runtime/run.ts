/**
 * Executing a pipeline: every selected instance waits for its upstream, computes its key,
 * reuses a valid cache entry or takes the entry's lock, runs (in process or in a child),
 * and commits its outputs atomically. A failure stops only its dependents; an abort stops
 * everything cleanly (children ended, temporary folders removed, nothing half-committed).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { buildManifest, commitEntry, lookupEntry, materializeOutputs, type Artifacts, type Manifest } from './cache.js';
import { evaluate, resultFromManifest, InstanceError, type Evaluated, type InstanceResult } from './evaluate.js';
import { EnvironmentError, PipelineError } from './errors.js';
import { formatDuration, safeName, sameJson } from './format.js';
import { FileHashMemo } from './hash.js';
import { runInProcess, strayProcessFile, type Launcher, type LaunchSpec } from './launch.js';
import type { Instance, Pipeline } from './load.js';
import { readLock, registerLockFile, updateLock, type LockEntry } from './lockfile.js';
import type { Reporter } from './progress.js';
import type { ResourcePool } from './resources.js';
import { RunLease } from './lease.js';
import { endRecordedGroups, unlock, waitLock } from './fsutil.js';
import type { StageOutputs } from './stage.js';
import type { Progress } from '../util/progress.js';
import type { Provenance } from '../util/provenance.js';
import { didYouMean } from './suggest.js';

export interface RunOptions {
  pipeline: Pipeline;
  art: Artifacts;
  lockFile: string;
  /** Instances to run, with their upstream (see selectInstances). */
  instances: Instance[];
  /** Instances re-run even when cached. */
  force: Set<Instance>;
  jobs: number;
  verify: boolean;
  pool: ResourcePool;
  launcher: Launcher;
  reporter: Reporter;
  signal: AbortSignal;
  /** Input-file digests memo (the caller reads what it looked at, for the no-op snapshot). */
  memo?: FileHashMemo;
}

export type Status = 'cached' | 'ran' | 'failed' | 'skipped' | 'interrupted';

export interface Outcome {
  instance: Instance;
  status: Status;
  error?: string;
  logFile?: string;
  /** Cache key, for instances that ended cached or ran. */
  key?: string;
}

/** Targets (stage ids or instance names) and everything upstream of them, in topological order. */
export function selectInstances(p: Pipeline, targets: string[]): Instance[] {
  if (!targets.length) return p.instances;
  const wanted = new Set<Instance>();
  const add = (i: Instance) => {
    if (wanted.has(i)) return;
    wanted.add(i);
    i.deps.forEach(add);
  };
  for (const t of resolveNames(p, targets, 'target')) add(t);
  return p.instances.filter((i) => wanted.has(i));
}

export function resolveNames(p: Pipeline, names: string[], what: string): Instance[] {
  const out: Instance[] = [];
  for (const name of names) {
    const found = p.stages.get(name)?.instances ?? (p.byName.has(name) ? [p.byName.get(name)!] : undefined);
    if (!found)
      throw new PipelineError(
        `${what} '${name}' is neither a stage nor an instance of ${p.shownFile} (stages: ${[...p.stages.keys()].join(', ')})` +
          didYouMean(name, [...p.stages.keys(), ...p.byName.keys()]),
      );
    out.push(...found);
  }
  return out;
}

export async function runPipeline(o: RunOptions): Promise<Outcome[]> {
  return new PipelineRun(o).run();
}

/**
 * One execution of a pipeline. Each instance goes through the same steps, in this order:
 * wait for its upstream (`process`), compute its key and reuse a valid cache entry (`tryCache`),
 * take the entry's lock (`computeLocked`), get its resources and a job slot, run the stage
 * (`execute`: `startLog`, `launch`, `commit`), and record the result in the lock file.
 */
class PipelineRun {
  private readonly p: Pipeline;
  private readonly art: Artifacts;
  private readonly reporter: Reporter;
  private readonly memo: FileHashMemo;
  private readonly lock: LockRecorder;
  /** The keys this run may use, so that gc keeps them. */
  private readonly lease: RunLease;
  private readonly jobSlot: ReturnType<typeof pLimit>;
  /** Each instance's outcome, as a promise its dependents wait on. */
  private readonly outcomes = new Map<Instance, Promise<Outcome>>();
  /** Outputs of every instance that ended cached or ran. */
  private readonly results = new Map<Instance, InstanceResult>();
  /** Entries this run holds the lock of, by key: instances with equal keys share one computation. */
  private readonly computing = new Map<string, string>();
  private saidCpuFallback = false;

  constructor(private readonly o: RunOptions) {
    this.p = o.pipeline;
    this.art = o.art;
    this.reporter = o.reporter;
    this.memo = o.memo ?? new FileHashMemo(join(o.art.root, 'filehash.json'));
    this.lock = new LockRecorder(o.lockFile, o.pipeline.name, o.reporter);
    this.lease = new RunLease(o.art);
    this.jobSlot = pLimit(Math.max(1, o.jobs));
  }

  async run(): Promise<Outcome[]> {
    this.art.removeOrphanTmp();
    this.art.removeStaleLocks();
    for (const inst of this.o.instances) this.outcomes.set(inst, this.process(inst));
    try {
      const all = await Promise.all(this.outcomes.values());
      this.lock.finish(
        this.p,
        all.some((x) => x.status === 'ran'),
        this.art.root,
      );
      this.memo.save();
      return all;
    } finally {
      // Only once the lock file records what the run used (or the run failed) may gc collect it.
      this.lease.release();
    }
  }

  /** Every error of one instance is that instance's failure; the others go on. */
  private async process(inst: Instance): Promise<Outcome> {
    try {
      const blocked = await this.waitForUpstream(inst);
      if (blocked) return blocked;
      const ev = await evaluate(this.p, inst, this.results, this.memo);
      // Before the entry is looked up or computed: from here on gc keeps it.
      await this.lease.hold(ev.parts.key, this.o.signal);
      if (this.o.signal.aborted) return { instance: inst, status: 'interrupted' };
      return (await this.tryCache(inst, ev)) ?? (await this.computeLocked(inst, ev));
    } catch (e) {
      const message = e instanceof InstanceError ? e.message : `${inst.name}: ${(e as Error).message ?? String(e)}`;
      this.reporter.finished(inst.name, 'failed', message);
      return { instance: inst, status: 'failed', error: message };
    }
  }

  /** Waits for the upstream outcomes; an outcome for this instance when it cannot run. */
  private async waitForUpstream(inst: Instance): Promise<Outcome | undefined> {
    const ups = await Promise.all(inst.deps.map((d) => this.outcomes.get(d)!));
    if (this.o.signal.aborted) return { instance: inst, status: 'interrupted' };
    const bad = ups.find((u) => u.status !== 'cached' && u.status !== 'ran');
    if (!bad) return undefined;
    const error = `upstream ${bad.instance.name} ${bad.status === 'skipped' ? 'skipped' : 'failed'}`;
    this.reporter.finished(inst.name, 'skipped', error);
    return { instance: inst, status: 'skipped', error };
  }

  /** The cached outcome when a valid entry exists and the instance is not forced. */
  private async tryCache(inst: Instance, ev: Evaluated, sayCorrupt = true): Promise<Outcome | undefined> {
    if (this.o.force.has(inst)) return undefined;
    const hit = await lookupEntry(this.art, ev.parts.key, this.o.verify);
    if (hit.ok) return this.reuse(inst, ev, hit.manifest);
    if (hit.reason === 'corrupt' && sayCorrupt) {
      this.reporter.note(
        `${inst.name}: cache entry ${ev.parts.key.slice(0, 12)} is corrupt (${hit.detail}): re-running`,
      );
    }
    return undefined;
  }

  private reuse(inst: Instance, ev: Evaluated, manifest: Manifest): Outcome {
    const result = resultFromManifest(this.art, manifest);
    this.results.set(inst, result);
    this.lock.record(inst.name, ev, result, false);
    this.reporter.finished(inst.name, 'cached');
    return { instance: inst, status: 'cached', key: ev.parts.key };
  }

  /** Holds the entry's lock (shared with other runs and twins of equal key) while computing it. */
  private async computeLocked(inst: Instance, ev: Evaluated): Promise<Outcome> {
    const key = ev.parts.key;
    const lockPath = this.art.entryLock(key);
    const got = await waitLock(lockPath, this.o.signal, () => {
      const twin = this.computing.get(key);
      this.reporter.note(
        twin
          ? `${inst.name}: same cache key as ${twin}: will reuse its result`
          : `${inst.name}: waiting, another run is computing entry ${key.slice(0, 12)}`,
      );
    });
    if (!got) return { instance: inst, status: 'interrupted' };
    // A dead run's stage may still be running in this entry's work folder: end it first.
    const strays = await endRecordedGroups(strayProcessFile(this.art.workDir(key)));
    if (strays)
      this.reporter.note(`${inst.name}: ended ${strays} process group(s) a dead run left running in its work folder`);
    this.computing.set(key, inst.name);
    try {
      // Another run (or a twin) may have committed it while we waited.
      return (await this.tryCache(inst, ev, false)) ?? (await this.executeWithResources(inst, ev));
    } finally {
      this.computing.delete(key);
      unlock(lockPath);
    }
  }

  /** Takes the instance's resources (a GPU...) and a job slot, then runs it. */
  private async executeWithResources(inst: Instance, ev: Evaluated): Promise<Outcome> {
    const grant = await this.o.pool.acquire(inst.resources, this.o.signal).catch(() => undefined);
    if (!grant) return { instance: inst, status: 'interrupted' };
    try {
      return await this.jobSlot(() =>
        this.o.signal.aborted
          ? { instance: inst, status: 'interrupted' as const }
          : this.execute(inst, ev, grant.env, grant.cpuFallback),
      );
    } finally {
      grant.release();
    }
  }

  /** Runs the stage into a temporary folder and commits it as the key's cache entry. */
  private async execute(
    inst: Instance,
    ev: Evaluated,
    env: Record<string, string>,
    cpuFallback: boolean,
  ): Promise<Outcome> {
    const key = ev.parts.key;
    const logFile = this.startLog(inst, key, cpuFallback);
    const tmp = this.art.newTmp();
    const workDir = this.art.workDir(key);
    mkdirSync(workDir, { recursive: true });
    const spec: LaunchSpec = {
      stage: inst.stage.type.name,
      instance: inst.name,
      stageId: inst.stage.id,
      key,
      resources: inst.resources,
      params: ev.params,
      outDir: join(tmp, 'out'),
      workDir,
      pipelineDir: this.p.dir,
      env,
      provenance: this.provenance(inst, key),
      logFile,
    };
    const started = Date.now();
    this.reporter.started(inst.name);
    try {
      const returned = await this.launch(inst, spec, join(tmp, 'spec.json'));
      rmSync(join(tmp, 'spec.json'), { force: true });
      const result = await this.commit(inst, key, spec, tmp, returned);
      // Only now: a batch job's record and outputs, kept there until the entry is committed
      // (slurm/watch.ts collectJob), go with the stage's checkpoints.
      rmSync(workDir, { recursive: true, force: true });
      rmSync(strayProcessFile(workDir), { force: true });
      this.results.set(inst, result);
      this.lock.record(inst.name, ev, result, true);
      this.reporter.finished(inst.name, 'ran', undefined, Date.now() - started);
      return { instance: inst, status: 'ran', logFile, key };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (this.o.signal.aborted) {
        this.reporter.finished(inst.name, 'interrupted', undefined, Date.now() - started);
        return { instance: inst, status: 'interrupted', logFile };
      }
      const message = (e as Error).message;
      writeFileSync(logFile, `\n# FAILED: ${message}\n`, { flag: 'a' });
      this.reporter.finished(inst.name, 'failed', `${message} (log: ${logFile})`, Date.now() - started);
      return { instance: inst, status: 'failed', error: message, logFile };
    }
  }

  /** Starts the instance's log file with a header; returns its path. */
  private startLog(inst: Instance, key: string, cpuFallback: boolean): string {
    const logDir = join(this.art.logs, safeName(this.p.name));
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, `${safeName(inst.name)}.log`);
    const header = `# ${inst.name} (${inst.stage.type.name} v${inst.stage.type.version}) key ${key}\n# ${new Date().toISOString()}\n`;
    writeFileSync(logFile, header + (cpuFallback ? '# no GPU on this machine: running on CPU\n' : ''));
    // Said once per run (each stage's log says it too): a sweep would repeat it dozens of times.
    if (cpuFallback && !this.saidCpuFallback) {
      this.saidCpuFallback = true;
      this.reporter.note(`no GPU on this machine: stages that ask for one run on the CPU (first: ${inst.name})`);
    }
    return logFile;
  }

  /** Runs the stage (heavy ones in a child through the launcher) and checks it returned every output. */
  private async launch(inst: Instance, spec: LaunchSpec, specFile: string): Promise<StageOutputs> {
    const onProgress = (pr: Progress) => this.reporter.progress(inst.name, pr);
    const returned = inst.heavy
      ? await this.o.launcher(spec, specFile, onProgress, this.o.signal)
      : await runInProcess(inst.stage.type, spec, onProgress, this.o.signal);
    if (this.o.signal.aborted) throw new Error('interrupted');
    for (const name of Object.keys(inst.outputs)) {
      if (!Object.hasOwn(returned, name)) throw new Error(`stage returned no value for its declared output '${name}'`);
    }
    return returned;
  }

  /** Digests the outputs and moves the temporary folder into the cache atomically. */
  private async commit(
    inst: Instance,
    key: string,
    spec: LaunchSpec,
    tmp: string,
    returned: StageOutputs,
  ): Promise<InstanceResult> {
    const identity = { key, uses: spec.stage, version: inst.stage.type.version, instance: inst.name };
    materializeOutputs(spec.outDir, spec.workDir);
    const manifest = await buildManifest(spec.outDir, identity, inst.outputs, returned);
    if (this.o.signal.aborted) throw new Error('interrupted');
    commitEntry(this.art, tmp, manifest);
    return resultFromManifest(this.art, manifest);
  }

  /** The pipeline file and the key of every upstream entry, for the stage's reports. */
  private provenance(inst: Instance, key: string): Provenance {
    const seen = new Set<Instance>();
    const visit = (i: Instance) => {
      for (const d of i.deps) {
        if (seen.has(d)) continue;
        seen.add(d);
        visit(d);
      }
    };
    visit(inst);
    const upstream = this.p.instances
      .filter((i) => seen.has(i) && this.results.has(i))
      .map((i) => ({
        instance: i.name,
        uses: i.stage.type.name,
        version: i.stage.type.version,
        key: this.results.get(i)!.key,
      }));
    return { pipelineFile: this.p.file, pipelineDigest: this.p.digest, key, upstream };
  }
}

/**
 * The pipeline's lock file, updated as instances end. Writes are batched: at most once a
 * second while stages commit, and at the end.
 */
class LockRecorder {
  private readonly before: Record<string, LockEntry>;
  private readonly updates = new Map<string, LockEntry>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly pipelineName: string,
    private readonly reporter: Reporter,
  ) {
    this.before = readLock(file)?.instances ?? {};
  }

  /** Records an instance's entry unless the lock file already says the same; `soon`: flush within a second. */
  record(instance: string, ev: Evaluated, result: InstanceResult, soon: boolean): void {
    const entry: LockEntry = { ...ev.parts, outputs: result.manifest.digest };
    const prev = this.before[instance];
    // The key already covers uses/version/params/inputs: compare it and the unhashed parts.
    if (
      prev &&
      prev.key === entry.key &&
      prev.outputs === entry.outputs &&
      sameJson(prev.upstream, entry.upstream) &&
      sameJson(prev.pipelineParams, entry.pipelineParams)
    )
      return;
    this.updates.set(instance, entry);
    if (soon) this.flushTimer ??= setTimeout(() => this.flush(), 1000);
  }

  flush(final = false): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.updates.size) return;
    try {
      updateLock(this.file, this.pipelineName, this.updates);
      this.updates.clear();
    } catch (e) {
      // Results are safe in the cache; the lock file is their record. During the run it is
      // written again at the next flush (a timer callback must not throw: it would take the
      // runner down); at the end, a run whose record could not be written has failed.
      const message = `cannot write the lock file ${this.file}: ${(e as Error).message}`;
      if (final)
        throw new EnvironmentError(
          `${message} (the results are in the cache: fix the cause, e.g. free disk space, and run again)`,
        );
      this.reporter.note(message);
    }
  }

  /** Last flush; drops instances no longer in the pipeline; registers the lock file for `gc`. */
  finish(p: Pipeline, anyRan: boolean, artifactsRoot: string): void {
    this.flush(true);
    const known = new Set(p.instances.map((i) => i.name));
    const names = Object.keys(this.before);
    if (names.some((n) => !known.has(n))) updateLock(this.file, this.pipelineName, new Map(), known);
    if (anyRan || !names.length) registerLockFile(artifactsRoot, this.file);
  }
}

export function summarize(outcomes: Outcome[], ms: number): string {
  const count = (s: Status) => outcomes.filter((x) => x.status === s).length;
  const parts = [`${count('ran')} ran`, `${count('cached')} cached`];
  if (count('failed')) parts.push(`${count('failed')} failed`);
  if (count('skipped')) parts.push(`${count('skipped')} skipped`);
  if (count('interrupted')) parts.push(`${count('interrupted')} interrupted`);
  return `${parts.join(', ')} in ${formatDuration(ms)}`;
}
