/**
 * Executing a pipeline: every selected instance waits for its upstream, computes its key,
 * reuses a valid cache entry or takes the entry's lock, runs (in process or in a child),
 * and commits its outputs atomically. A failure stops only its dependents; an abort stops
 * everything cleanly (children ended, temporary folders removed, nothing half-committed).
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { buildManifest, commitEntry, lookupEntry, type Artifacts } from './cache.js';
import { evaluate, resultFromManifest, InstanceError, type Evaluated, type InstanceResult } from './evaluate.js';
import { PipelineError } from './errors.js';
import { formatDuration, safeName, sameJson } from './format.js';
import { FileHashMemo } from './hash.js';
import { runInProcess, type Launcher, type LaunchSpec } from './launch.js';
import type { Instance, Pipeline } from './load.js';
import { readLock, registerLockFile, updateLock, type LockEntry } from './lockfile.js';
import type { Reporter } from './progress.js';
import { ResourcePool } from './resources.js';
import { unlock, waitLock } from './fsutil.js';
import type { Json } from './stage.js';
import type { Provenance } from '../util/provenance.js';

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
    if (!found) throw new PipelineError(`${what} '${name}' is neither a stage nor an instance of ${p.shownFile} (stages: ${[...p.stages.keys()].join(', ')})`);
    out.push(...found);
  }
  return out;
}

export async function runPipeline(o: RunOptions): Promise<Outcome[]> {
  const { pipeline: p, art, reporter } = o;
  const memo = o.memo ?? new FileHashMemo(join(art.root, 'filehash.json'));
  const lockBefore = readLock(o.lockFile)?.instances ?? {};
  const lockUpdates = new Map<string, LockEntry>();
  const results = new Map<Instance, InstanceResult>();
  const limit = pLimit(Math.max(1, o.jobs));
  const outcomes = new Map<Instance, Promise<Outcome>>();
  /** Entries this run holds the lock of, by key: instances with equal keys share one computation. */
  const computing = new Map<string, string>();
  art.removeOrphanTmp();
  art.removeStaleLocks();

  // Lock-file writes are batched: at most once a second while stages commit, and at the end.
  let flushTimer: NodeJS.Timeout | undefined;
  let saidCpuFallback = false;
  const flushLock = () => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    if (!lockUpdates.size) return;
    try {
      updateLock(o.lockFile, p.name, lockUpdates);
      lockUpdates.clear();
    } catch (e) {
      // Results are safe in the cache; the lock file is their record and is written again at
      // the next flush. A timer callback must not throw: it would take the runner down.
      reporter.note(`cannot write the lock file ${o.lockFile}: ${(e as Error).message}`);
    }
  };
  const recordLock = (inst: Instance, ev: Evaluated, result: InstanceResult, soon: boolean) => {
    const entry: LockEntry = { ...ev.parts, outputs: result.manifest.digest };
    const prev = lockBefore[inst.name];
    // The key already covers uses/version/params/inputs: compare it and the unhashed parts.
    if (prev && prev.key === entry.key && prev.outputs === entry.outputs && sameJson(prev.upstream, entry.upstream) && sameJson(prev.pipelineParams, entry.pipelineParams)) return;
    lockUpdates.set(inst.name, entry);
    if (soon) flushTimer ??= setTimeout(flushLock, 1000);
  };

  /** Every error of one instance is that instance's failure; the others go on. */
  const processInstance = async (inst: Instance): Promise<Outcome> => {
    try {
      return await processInstanceUnguarded(inst);
    } catch (e) {
      const message = e instanceof InstanceError ? e.message : `${inst.name}: ${(e as Error).message ?? String(e)}`;
      reporter.finished(inst.name, 'failed', message);
      return { instance: inst, status: 'failed', error: message };
    }
  };

  const processInstanceUnguarded = async (inst: Instance): Promise<Outcome> => {
    const ups = await Promise.all(inst.deps.map((d) => outcomes.get(d)!));
    if (o.signal.aborted) return { instance: inst, status: 'interrupted' };
    const bad = ups.find((u) => u.status !== 'cached' && u.status !== 'ran');
    if (bad) {
      const outcome: Outcome = { instance: inst, status: 'skipped', error: `upstream ${bad.instance.name} ${bad.status === 'skipped' ? 'skipped' : 'failed'}` };
      reporter.finished(inst.name, 'skipped', outcome.error);
      return outcome;
    }
    const ev = await evaluate(p, inst, results, memo);
    const forced = o.force.has(inst);
    if (!forced) {
      const hit = await lookupEntry(art, ev.parts.key, o.verify);
      if (hit.ok) return reuse(inst, ev, hit.manifest);
      if (hit.reason === 'corrupt') reporter.note(`${inst.name}: cache entry ${ev.parts.key.slice(0, 12)} is corrupt (${hit.detail}): re-running`);
    }
    return runLocked(inst, ev, forced);
  };

  const reuse = (inst: Instance, ev: Evaluated, manifest: Parameters<typeof resultFromManifest>[1]): Outcome => {
    const result = resultFromManifest(art, manifest);
    results.set(inst, result);
    recordLock(inst, ev, result, false);
    reporter.finished(inst.name, 'cached');
    return { instance: inst, status: 'cached', key: ev.parts.key };
  };

  const runLocked = async (inst: Instance, ev: Evaluated, forced: boolean): Promise<Outcome> => {
    const lockPath = art.entryLock(ev.parts.key);
    const got = await waitLock(lockPath, o.signal, () => {
      const twin = computing.get(ev.parts.key);
      reporter.note(twin ? `${inst.name}: same cache key as ${twin}: will reuse its result` : `${inst.name}: waiting, another run is computing entry ${ev.parts.key.slice(0, 12)}`);
    });
    if (!got) return { instance: inst, status: 'interrupted' };
    computing.set(ev.parts.key, inst.name);
    try {
      if (!forced) {
        // Another run may have committed it while we waited.
        const hit = await lookupEntry(art, ev.parts.key, o.verify);
        if (hit.ok) return reuse(inst, ev, hit.manifest);
      }
      const grant = await o.pool.acquire(inst.resources, o.signal).catch(() => undefined);
      if (!grant) return { instance: inst, status: 'interrupted' };
      try {
        return await limit(() => (o.signal.aborted ? { instance: inst, status: 'interrupted' as const } : execute(inst, ev, grant.env, grant.cpuFallback)));
      } finally {
        grant.release();
      }
    } finally {
      computing.delete(ev.parts.key);
      unlock(lockPath);
    }
  };

  const execute = async (inst: Instance, ev: Evaluated, env: Record<string, string>, cpuFallback: boolean): Promise<Outcome> => {
    const key = ev.parts.key;
    const logDir = join(art.logs, safeName(p.name));
    mkdirSync(logDir, { recursive: true });
    const logFile = join(logDir, `${safeName(inst.name)}.log`);
    const tmp = art.newTmp();
    const workDir = art.workDir(key);
    mkdirSync(workDir, { recursive: true });
    const header = `# ${inst.name} (${inst.stage.type.name} v${inst.stage.type.version}) key ${key}\n# ${new Date().toISOString()}\n`;
    writeFileSync(logFile, header + (cpuFallback ? '# no GPU on this machine: running on CPU\n' : ''));
    // Said once per run (each stage's log says it too): a sweep would repeat it dozens of times.
    if (cpuFallback && !saidCpuFallback) {
      saidCpuFallback = true;
      reporter.note(`no GPU on this machine: stages that ask for one run on the CPU (first: ${inst.name})`);
    }
    const spec: LaunchSpec = {
      stage: inst.stage.type.name,
      instance: inst.name,
      params: ev.params,
      outDir: join(tmp, 'out'),
      workDir,
      pipelineDir: p.dir,
      env,
      provenance: provenance(inst, key),
      logFile,
    };
    const started = Date.now();
    reporter.started(inst.name);
    const onProgress = (pr: Parameters<typeof reporter.progress>[1]) => reporter.progress(inst.name, pr);
    try {
      const returned = inst.heavy
        ? await o.launcher(spec, join(tmp, 'spec.json'), onProgress, o.signal)
        : await runInProcess(inst.stage.type, spec, onProgress, o.signal);
      if (o.signal.aborted) throw new Error('interrupted');
      for (const name of Object.keys(inst.outputs)) {
        if (!(name in returned)) throw new Error(`stage returned no value for its declared output '${name}'`);
      }
      rmSync(join(tmp, 'spec.json'), { force: true });
      const manifest = await buildManifest(spec.outDir, { key, uses: spec.stage, version: inst.stage.type.version, instance: inst.name }, inst.outputs, returned as Record<string, Json>);
      if (o.signal.aborted) throw new Error('interrupted');
      commitEntry(art, tmp, manifest);
      rmSync(workDir, { recursive: true, force: true });
      const result = resultFromManifest(art, manifest);
      results.set(inst, result);
      recordLock(inst, ev, result, true);
      reporter.finished(inst.name, 'ran', undefined, Date.now() - started);
      return { instance: inst, status: 'ran', logFile, key };
    } catch (e) {
      rmSync(tmp, { recursive: true, force: true });
      if (o.signal.aborted) {
        reporter.finished(inst.name, 'interrupted', undefined, Date.now() - started);
        return { instance: inst, status: 'interrupted', logFile };
      }
      const message = (e as Error).message;
      writeFileSync(logFile, `\n# FAILED: ${message}\n`, { flag: 'a' });
      reporter.finished(inst.name, 'failed', `${message} (log: ${logFile})`, Date.now() - started);
      return { instance: inst, status: 'failed', error: message, logFile };
    }
  };

  const provenance = (inst: Instance, key: string): Provenance => {
    const seen = new Set<Instance>();
    const visit = (i: Instance) => {
      for (const d of i.deps) if (!seen.has(d)) (seen.add(d), visit(d));
    };
    visit(inst);
    const upstream = p.instances
      .filter((i) => seen.has(i) && results.has(i))
      .map((i) => ({ instance: i.name, uses: i.stage.type.name, version: i.stage.type.version, key: results.get(i)!.key }));
    return { pipelineFile: p.file, pipelineDigest: p.digest, key, upstream };
  };

  for (const inst of o.instances) outcomes.set(inst, processInstance(inst));
  const all = await Promise.all(outcomes.values());
  flushLock();
  // Drop entries of instances no longer in the pipeline (only when writing anyway or when there are some).
  const known = new Set(p.instances.map((i) => i.name));
  if (Object.keys(lockBefore).some((n) => !known.has(n))) updateLock(o.lockFile, p.name, new Map(), known);
  if (all.some((x) => x.status === 'ran') || !Object.keys(lockBefore).length) registerLockFile(art.root, o.lockFile);
  memo.save();
  return all;
}

export function summarize(outcomes: Outcome[], ms: number): string {
  const count = (s: Status) => outcomes.filter((x) => x.status === s).length;
  const parts = [`${count('ran')} ran`, `${count('cached')} cached`];
  if (count('failed')) parts.push(`${count('failed')} failed`);
  if (count('skipped')) parts.push(`${count('skipped')} skipped`);
  if (count('interrupted')) parts.push(`${count('interrupted')} interrupted`);
  return `${parts.join(', ')} in ${formatDuration(ms)}`;
}
