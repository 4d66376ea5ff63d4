/**
 * Why an instance is stale: the would-be key parts diffed against the lock file
 * ("param lr 7e-5 -> 1e-4", "input data.csv changed", "upstream norm changed",
 * "stage version 1 -> 2", "never run", "cache entry missing"). Also the whole-pipeline
 * walk behind `status`, `show` and `run --dry-run`.
 */
import { lookupEntry, type Artifacts } from './cache.js';
import { evaluate, resultFromManifest, type InstanceResult, type KeyParts } from './evaluate.js';
import { formatValue, isPlainObject, sameJson } from './format.js';
import type { FileHashMemo } from './hash.js';
import type { Instance, Pipeline } from './load.js';
import type { LockEntry } from './lockfile.js';
import type { Json } from './stage.js';

export type State = 'cached' | 'stale' | 'blocked' | 'error';

export interface Explained {
  instance: Instance;
  state: State;
  reasons: string[];
  key?: string;
  parts?: KeyParts;
}

export function staleReasons(prev: LockEntry | undefined, parts: KeyParts): string[] {
  if (!prev) return ['never run'];
  const reasons: string[] = [];
  if (prev.uses !== parts.uses) reasons.push(`stage type ${prev.uses} -> ${parts.uses}`);
  if (prev.version !== parts.version) reasons.push(`stage version ${prev.version} -> ${parts.version}`);
  if (prev.code && prev.code !== parts.code) reasons.push(`code of ${parts.uses} changed`);
  // Pipeline params by name ("param lr 7e-5 -> 1e-4"), then the stage's own `with:` fields;
  // a field that only echoes a changed pipeline param is not repeated.
  const pipelineDiff = paramDiff(prev.pipelineParams ?? {}, parts.pipelineParams ?? {}, 'param ');
  const suffixes = new Set(pipelineDiff.map((r) => r.slice(r.indexOf(' ', 6))));
  const withDiff = paramDiff(prev.params, parts.params, 'with.').filter(
    (r) => !pipelineDiff.length || (!r.endsWith(' changed') && !suffixes.has(r.slice(r.indexOf(' ')))),
  );
  reasons.push(...pipelineDiff, ...withDiff);
  for (const [path, d] of Object.entries(parts.inputs)) {
    if (!Object.hasOwn(prev.inputs ?? {}, path)) reasons.push(`input ${path} added`);
    else if (prev.inputs[path] !== d) reasons.push(`input ${path} changed`);
  }
  for (const path of Object.keys(prev.inputs ?? {})) if (!(path in parts.inputs)) reasons.push(`input ${path} removed`);
  for (const [name, d] of Object.entries(parts.upstream)) {
    if (!Object.hasOwn(prev.upstream ?? {}, name)) reasons.push(`upstream ${name} added`);
    else if (prev.upstream[name] !== d) reasons.push(`upstream ${name} changed`);
  }
  if (!reasons.length && prev.key !== parts.key) reasons.push('cache key changed');
  return reasons;
}

function flatten(v: Json, prefix: string, out: Map<string, Json>): Map<string, Json> {
  if (isPlainObject(v) && Object.keys(v).length) {
    for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  } else out.set(prefix, v);
  return out;
}

/** Upstream file digests are reported as "upstream X changed", not as param changes. */
const isDigest = (v: Json | undefined) => typeof v === 'string' && v.startsWith('sha256:');

function paramDiff(before: Json, after: Json, label: string): string[] {
  const a = flatten(before ?? {}, '', new Map());
  const b = flatten(after ?? {}, '', new Map());
  const out: string[] = [];
  for (const [k, v] of b) {
    if (!a.has(k)) out.push(`${label}${k} added (${shortValue(v)})`);
    else if (!sameJson(a.get(k), v) && !(isDigest(a.get(k)) && isDigest(v)))
      out.push(change(`${label}${k}`, a.get(k)!, v));
  }
  for (const k of a.keys()) if (!b.has(k)) out.push(`${label}${k} removed`);
  return out;
}

/** "param lr 7e-5 -> 1e-4"; long values (commands, lists) only as "param cmd changed". */
function change(what: string, before: Json, after: Json): string {
  const a = formatValue(before);
  const b = formatValue(after);
  return a.length > 40 || b.length > 40 ? `${what} changed` : `${what} ${a} -> ${b}`;
}

function shortValue(v: Json): string {
  const s = formatValue(v);
  return s.length > 40 ? `${s.slice(0, 37)}...` : s;
}

/**
 * Walks instances in topological order: an instance whose upstream is all cached gets its
 * key computed and looked up; one below a stale instance is "blocked" (its key depends on
 * outputs not computed yet; early cutoff may still keep it cached).
 */
export async function explainAll(
  p: Pipeline,
  art: Artifacts,
  memo: FileHashMemo,
  lock: Record<string, LockEntry>,
  instances: Instance[] = p.instances,
  verify = false,
): Promise<{ explained: Explained[]; results: Map<Instance, InstanceResult> }> {
  const results = new Map<Instance, InstanceResult>();
  const byInst = new Map<Instance, Explained>();
  for (const inst of instances) {
    const pending = inst.deps.filter((d) => !results.has(d));
    if (pending.length) {
      const names = [...new Set(pending.map((d) => d.stage.id))];
      byInst.set(inst, { instance: inst, state: 'blocked', reasons: [`upstream ${names.join(', ')} not cached`] });
      continue;
    }
    let parts: KeyParts;
    try {
      parts = (await evaluate(p, inst, results, memo)).parts;
    } catch (e) {
      byInst.set(inst, { instance: inst, state: 'error', reasons: [(e as Error).message ?? String(e)] });
      continue;
    }
    const hit = await lookupEntry(art, parts.key, verify);
    if (hit.ok) {
      results.set(inst, resultFromManifest(art, hit.manifest));
      byInst.set(inst, { instance: inst, state: 'cached', reasons: [], key: parts.key, parts });
      continue;
    }
    let reasons = staleReasons(lock[inst.name], parts);
    if (lock[inst.name]?.key === parts.key || !reasons.length) {
      reasons = [hit.reason === 'missing' ? 'cache entry missing' : `cache entry corrupt (${hit.detail})`];
    }
    byInst.set(inst, { instance: inst, state: 'stale', reasons, key: parts.key, parts });
  }
  return { explained: instances.map((i) => byInst.get(i)!), results };
}
