/**
 * For one instance, given its upstream results: the params it runs with (references resolved,
 * schema defaults applied) and the parts of its cache key. Shared by `run`, `status`, `show`
 * and `--dry-run`, so they can never disagree on what a key is.
 */
import { existsSync, statSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { formatPos, PipelineError, type SourcePos } from './errors.js';
import { outputPath, type Artifacts, type Manifest } from './cache.js';
import { digestJson, type FileHashMemo } from './hash.js';
import { stageCodeDigest } from './code.js';
import { setOwn } from './format.js';
import { applyPath, renderTemplate, RefSyntaxError, type Ref } from './refs.js';
import type { Instance, Pipeline } from './load.js';
import type { Json } from './stage.js';
import { schemaErrors, validator } from './validate.js';

/** A committed instance, as downstream stages see it. */
export interface InstanceResult {
  key: string;
  manifest: Manifest;
  /** Per output: what the stage receives (value or absolute path) and what its key hashes. */
  outputs: Record<string, { run: Json; key: Json }>;
}

export interface KeyParts {
  uses: string;
  version: string;
  /** Digest of the stage type's code (its module closure, see code.ts). */
  code?: string;
  /** Resolved params as hashed (defaults applied; upstream files as `sha256:` digests). */
  params: Json;
  /** Input file/folder digests by path relative to the pipeline folder. */
  inputs: Record<string, string>;
  /** Output digest of each upstream instance this one consumed (recorded, not hashed: early cutoff). */
  upstream: Record<string, string>;
  /** Values of the pipeline params the instance refers to: recorded for messages, not hashed. */
  pipelineParams?: Record<string, Json>;
  key: string;
}

export interface Evaluated {
  params: Record<string, Json>;
  parts: KeyParts;
}

export function resultFromManifest(art: Artifacts, m: Manifest): InstanceResult {
  const outputs: InstanceResult['outputs'] = {};
  for (const [name, o] of Object.entries(m.outputs)) {
    outputs[name] =
      o.kind === 'value'
        ? { run: o.value ?? null, key: o.value ?? null }
        : { run: outputPath(art, m.key, o.path!), key: `sha256:${o.digest}` };
  }
  return { key: m.key, manifest: m, outputs };
}

/** A problem found while preparing an instance (a resolved param of the wrong type, a missing input). */
export class InstanceError extends Error {
  constructor(
    message: string,
    readonly pos?: SourcePos,
  ) {
    super(pos ? `${formatPos(pos)}: ${message}` : message);
  }
}

export async function evaluate(
  p: Pipeline,
  inst: Instance,
  results: Map<Instance, InstanceResult>,
  memo: FileHashMemo,
): Promise<Evaluated> {
  const params = structuredClone(inst.with);
  const keyValues: Array<[Array<string | number>, Json]> = [];
  for (const hole of inst.holes) {
    const targets = new Map<Ref, Instance[]>(hole.refs.map((r) => [r.ref, r.instances]));
    const outputValue =
      (version: 'run' | 'key') =>
      (r: Ref): Json => {
        const instances = targets.get(r)!;
        const values = instances.map(
          (t) => results.get(t)!.outputs[(r as Extract<Ref, { kind: 'stage' }>).output][version],
        );
        const isList = instances[0].stage.matrixKeys.length > 0 && !(r as Extract<Ref, { kind: 'stage' }>).filter;
        try {
          return applyPath(isList ? values : values[0], r.path, r.text);
        } catch (e) {
          if (e instanceof RefSyntaxError) throw new InstanceError(`stage ${inst.name}: ${e.message}`, hole.pos);
          throw e;
        }
      };
    setAt(params, hole.path, renderTemplate(hole.template, outputValue('run')));
    keyValues.push([hole.path, renderTemplate(hole.template, outputValue('key'))]);
  }
  const validate = validator(inst.stage.type.params, true);
  if (!validate(params)) {
    const errs = schemaErrors(
      validate.errors ?? [],
      p.positions,
      `${inst.stage.pointer}/with`,
      `stage ${inst.name} (after resolving references)`,
    );
    throw new InstanceError(errs.map((e) => e.message).join('; '), errs[0]?.pos);
  }
  const keyParams = structuredClone(params);
  for (const [path, v] of keyValues) setAt(keyParams, path, v);
  const parts: Omit<KeyParts, 'key'> = {
    uses: inst.stage.type.name,
    version: inst.stage.type.version,
    code: stageCodeDigest(inst.stage.type),
    params: withoutPipelineDir(keyParams, p.dir),
    inputs: await inputDigests(
      p,
      inst,
      params,
      memo,
      referencedStrings(
        params,
        inst.holes.map((h) => h.path),
      ),
    ),
    upstream: upstreamDigests(inst, results),
    pipelineParams: Object.fromEntries(inst.usedParams.map((n) => [n, p.params[n]])),
  };
  const key = digestJson({
    type: parts.uses,
    version: parts.version,
    code: parts.code ?? null,
    params: parts.params,
    inputs: parts.inputs,
  });
  return { params, parts: { ...parts, key } };
}

function setAt(obj: Json, path: Array<string | number>, v: Json): void {
  let cur = obj as Record<string | number, Json>;
  for (const seg of path.slice(0, -1)) cur = cur[seg] as Record<string | number, Json>;
  const last = path[path.length - 1];
  if (typeof last === 'number') cur[last] = v;
  else setOwn(cur as Record<string, Json>, last, v);
}

/** The pipeline's absolute folder is not part of a result's identity: moving a project keeps its cache. */
function withoutPipelineDir(v: Json, dir: string): Json {
  if (typeof v === 'string') return v.includes(dir) ? v.split(dir).join('${{ pipeline.dir }}') : v;
  if (Array.isArray(v)) return v.map((x) => withoutPipelineDir(x, dir));
  if (v && typeof v === 'object')
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withoutPipelineDir(x, dir)]));
  return v;
}

/** Strings that references put into the params (upstream output paths among them). */
function referencedStrings(params: Json, holePaths: Array<Array<string | number>>): Set<string> {
  const out = new Set<string>();
  const collect = (v: Json): void => {
    if (typeof v === 'string') out.add(v);
    else if (Array.isArray(v)) v.forEach(collect);
    else if (v && typeof v === 'object') Object.values(v).forEach(collect);
  };
  for (const path of holePaths)
    collect(path.reduce<Json>((cur, seg) => (cur as Record<string | number, Json>)?.[seg] ?? null, params));
  return out;
}

async function inputDigests(
  p: Pipeline,
  inst: Instance,
  params: Record<string, Json>,
  memo: FileHashMemo,
  fromReferences: Set<string>,
): Promise<Record<string, string>> {
  // An input that is an upstream output is already in the key by its content digest (the
  // reference's key value); listing it again would put a machine-specific cache path in the key.
  const files = (inst.stage.type.inputFiles?.(params) ?? []).filter((f) => !fromReferences.has(f));
  const out: Record<string, string> = {};
  for (const rel of files) {
    const abs = resolvePath(p.dir, rel);
    try {
      statSync(abs);
    } catch {
      throw new InstanceError(inputNotFound(inst.name, rel, abs), inputPos(p, inst, rel));
    }
    out[rel] = await memo.digest(abs);
  }
  return out;
}

/** `who`: the instance a run hashes, or the stage when one message stands for all its instances. */
function inputNotFound(who: string, rel: string, abs: string): string {
  return `stage ${who}: input ${rel} not found${abs === rel ? '' : ` (looked for ${abs})`}`;
}

function inputPos(p: Pipeline, inst: Instance, rel: string): SourcePos | undefined {
  return p.positions.at(`${inst.stage.pointer}/with${pointerTo(inst.with, rel) ?? ''}`);
}

/**
 * Input files that are not there, found without running: those of instances that nothing runs
 * before (no upstream, no `needs`) and whose params are all literal, so that no stage of the
 * run could create them first. Other instances' inputs are judged when the run hashes them.
 */
export function missingInputs(p: Pipeline): PipelineError[] {
  const errors = new Map<string, PipelineError>();
  for (const inst of p.instances) {
    if (inst.holes.length || inst.deps.length || !inst.stage.type.inputFiles) continue;
    const params = structuredClone(inst.with);
    if (!validator(inst.stage.type.params, true)(params)) continue; // loading has said why
    for (const rel of inst.stage.type.inputFiles(params)) {
      const abs = resolvePath(p.dir, rel);
      if (existsSync(abs)) continue;
      // One error per place in the file, not per instance of a matrix stage.
      const pos = inputPos(p, inst, rel);
      const key = pos ? `${pos.file}:${pos.line}:${pos.col}` : `${inst.stage.id} ${rel}`;
      const text = inputNotFound(inst.stage.id, rel, abs);
      if (!errors.has(key)) errors.set(key, new PipelineError(text, pos));
    }
  }
  return [...errors.values()];
}

/** Pointer of the first string equal to `value` in a params tree (where an input path was written). */
function pointerTo(v: Json, value: string, ptr = ''): string | undefined {
  if (v === value) return ptr;
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      const hit = pointerTo(x, value, `${ptr}/${k}`);
      if (hit !== undefined) return hit;
    }
  }
  return undefined;
}

function upstreamDigests(inst: Instance, results: Map<Instance, InstanceResult>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const hole of inst.holes)
    for (const r of hole.refs) for (const t of r.instances) out[t.name] = results.get(t)!.manifest.digest;
  return out;
}
