/**
 * Loading a pipeline: YAML (with `extends:` merged) -> schema check -> params (+ --set) ->
 * matrix expansion -> references -> dependency graph in topological order. Every error names
 * file:line:col, the stage and the field; nothing runs when loading fails.
 */
import { basename, dirname, relative, resolve as resolvePath, isAbsolute } from 'node:path';
import { formatPos, PipelineError, PipelineErrors, type SourcePos } from './errors.js';
import { deepMerge, formatNumber, formatValue, isPlainObject, protoKeyPath, setOwn } from './format.js';
import { applyDefaults } from './defaults.js';
import {
  parseTemplate,
  applyPath,
  interpolationText,
  renderTemplate,
  RefSyntaxError,
  type Ref,
  type Template,
} from './refs.js';
import { PipelineFileSchema, IDENT, type StageDecl } from './schema.js';
import type { Json, OutputDecl, StageType } from './stage.js';
import { validator, schemaErrors } from './validate.js';
import { Positions, pointerOf, readYamlFile, type NodePos, type SourceDoc } from './yaml-source.js';
import { NUM_VAR_PREFIX, REF_VAR_PREFIX, rewriteShellReferences } from './shell-refs.js';
import { sha256 } from '../util/hash.js';
import { didYouMean } from './suggest.js';

/** A place in `with:` that still holds references to other stages' outputs. */
export interface Hole {
  path: Array<string | number>;
  /** Params, matrix and pipeline references already substituted; only stage references left. */
  template: Template;
  /** The stage references of the template, with the instances each one reads. */
  refs: Array<{ ref: Extract<Ref, { kind: 'stage' }>; instances: Instance[] }>;
  pos: SourcePos;
}

export interface Instance {
  /** `id` or `id[k1=v1,k2=v2]`. */
  name: string;
  stage: StageNode;
  matrix: Record<string, Json>;
  /** `with:` params, references to params/matrix substituted; holes still hold their text. */
  with: Record<string, Json>;
  holes: Hole[];
  /** Instances this one waits for (data references and `needs:`), unique. */
  deps: Instance[];
  outputs: Record<string, OutputDecl>;
  resources: Record<string, number>;
  heavy: boolean;
  /** Pipeline params this instance's `with:`/matrix refer to (for "param lr 7e-5 -> 1e-4" in status). */
  usedParams: string[];
}

export interface StageNode {
  id: string;
  type: StageType<any>;
  decl: StageDecl;
  matrixKeys: string[];
  instances: Instance[];
  pointer: string;
}

export interface Pipeline {
  /** Absolute path of the pipeline file. */
  file: string;
  /** As shown in messages (relative to the working directory when inside it). */
  shownFile: string;
  dir: string;
  name: string;
  params: Record<string, Json>;
  stages: Map<string, StageNode>;
  /** All instances in topological order (declaration order among independent ones). */
  instances: Instance[];
  byName: Map<string, Instance>;
  /** sha256 of the pipeline file and the files it extends. */
  digest: string;
  /** Absolute paths of the pipeline file and the files it extends. */
  sourceFiles: string[];
  positions: Positions;
}

export interface LoadOptions {
  file: string;
  stageTypes: StageType<any>[];
  /** `--set key=value` overrides, as text: typed by the declared default's type. */
  set?: Array<[string, string]>;
}

export function shownPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : abs;
}

export function loadPipeline(opts: LoadOptions): Pipeline {
  const file = resolvePath(opts.file);
  const sourceFiles: string[] = [];
  const { data, docs } = readChain(file, [], sourceFiles);
  const positions = new Positions([...docs]); // a copy: defaults add positions, not source text
  const errors: PipelineError[] = [];
  const shown = shownPath(file);

  const check = validator(PipelineFileSchema);
  // The position names the file: the message names the field only.
  if (!check(data)) throw new PipelineErrors(schemaErrors(check.errors ?? [], positions, '', ''));
  checkNames(data as Record<string, Record<string, unknown>>, positions, errors);
  if (errors.length) throw new PipelineErrors(errors);
  applyDefaults(data as Parameters<typeof applyDefaults>[0], positions, opts.stageTypes);

  const file$ = data as unknown as { name?: string; params?: Record<string, Json>; stages: Record<string, StageDecl> };
  // No prototype: a param is what the file declares, never an inherited `toString`.
  const params = applySet(
    Object.assign(Object.create(null) as Record<string, Json>, file$.params),
    opts.set ?? [],
    positions,
  );
  const pipeline: Pipeline = {
    file,
    shownFile: shown,
    dir: dirname(file),
    name: file$.name ?? basename(file).replace(/\.ya?ml$/, ''),
    params,
    stages: new Map(),
    instances: [],
    byName: new Map(),
    digest: sha256(docs.map((d) => d.text).join('\0')),
    sourceFiles,
    positions,
  };

  const types = new Map(opts.stageTypes.map((t) => [t.name, t]));
  for (const [id, decl] of Object.entries(file$.stages)) {
    const pointer = pointerOf(['stages', id]);
    const type = types.get(decl.uses);
    if (!type) {
      errors.push(
        new PipelineError(
          `stage ${id}: unknown stage type '${decl.uses}' (known: ${[...types.keys()].sort().join(', ') || 'none'})` +
            didYouMean(String(decl.uses), types.keys()),
          positions.at(`${pointer}/uses`),
        ),
      );
      continue;
    }
    const node: StageNode = { id, type, decl, matrixKeys: Object.keys(decl.matrix ?? {}), instances: [], pointer };
    pipeline.stages.set(id, node);
    collect(errors, () => expandStage(pipeline, node));
  }
  if (errors.length) throw new PipelineErrors(errors);

  for (const inst of allInstances(pipeline)) collect(errors, () => linkInstance(pipeline, inst));
  if (errors.length) throw new PipelineErrors(errors);
  for (const inst of allInstances(pipeline)) errors.push(...checkLiteralParams(pipeline, inst));
  if (errors.length) throw new PipelineErrors(errors);

  pipeline.instances = topoSort(pipeline);
  return pipeline;
}

function collect(errors: PipelineError[], fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof PipelineErrors) errors.push(...e.errors);
    else if (e instanceof PipelineError) errors.push(e);
    else throw e;
  }
}

function* allInstances(p: Pipeline): Generator<Instance> {
  for (const node of p.stages.values()) yield* node.instances;
}

// ---------------------------------------------------------------------------------------------
// Files and `extends:`

function readChain(
  file: string,
  seen: string[],
  files: string[],
): { data: Record<string, unknown>; docs: SourceDoc[] } {
  if (seen.includes(file)) {
    throw new PipelineError(`extends cycle: ${[...seen, file].map(shownPath).join(' -> ')}`);
  }
  const doc = readYamlFile(file, shownPath(file));
  files.push(file);
  if (!isPlainObject(doc.data)) {
    throw new PipelineError('a pipeline file must be a mapping with a `stages:` key', {
      file: doc.file,
      line: 1,
      col: 1,
    });
  }
  const data = doc.data as Record<string, unknown>;
  const parentRef = data.extends;
  if (parentRef === undefined) return { data, docs: [doc] };
  if (typeof parentRef !== 'string') {
    throw new PipelineError('extends: must be a path (relative to this file)', new Positions([doc]).at('/extends'));
  }
  const parentFile = resolvePath(dirname(file), parentRef);
  let parent: { data: Record<string, unknown>; docs: SourceDoc[] };
  try {
    parent = readChain(parentFile, [...seen, file], files);
  } catch (e) {
    if (e instanceof PipelineError && !e.pos)
      throw new PipelineError(
        e.message.startsWith('extends') ? e.message : `extends: ${e.message}`,
        new Positions([doc]).at('/extends'),
      );
    throw e;
  }
  const { extends: _ignored, ...child } = data;
  return { data: mergePipeline(parent.data, child), docs: [doc, ...parent.docs] };
}

/** Child over parent: params per key; stages per id (null removes), `with:` merged deeply. */
export function mergePipeline(
  parent: Record<string, unknown>,
  child: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...parent, ...child };
  if (isPlainObject(parent.params) || isPlainObject(child.params)) {
    out.params = { ...(parent.params as object), ...(child.params as object) };
  }
  if (parent.defaults !== undefined && child.defaults !== undefined)
    out.defaults = deepMerge(parent.defaults as Json, child.defaults as Json);
  const stages: Record<string, unknown> = { ...(parent.stages as object) };
  for (const [id, decl] of Object.entries((child.stages as Record<string, unknown>) ?? {})) {
    if (decl === null) delete stages[id];
    else if (isPlainObject(stages[id]) && isPlainObject(decl))
      stages[id] = mergeStage(stages[id] as Record<string, Json>, decl);
    else stages[id] = decl;
  }
  out.stages = stages;
  return out;
}

function mergeStage(parent: Record<string, Json>, child: Record<string, Json>): Record<string, Json> {
  const out = { ...parent };
  for (const [k, v] of Object.entries(child)) {
    if (k === 'with') out.with = deepMerge(parent.with, v);
    else if (k === 'resources' && isPlainObject(parent.resources) && isPlainObject(v))
      out.resources = { ...parent.resources, ...v };
    else out[k] = v;
  }
  return out;
}

function checkNames(
  data: Record<string, Record<string, unknown>>,
  positions: Positions,
  errors: PipelineError[],
): void {
  const ident = new RegExp(IDENT);
  for (const section of ['stages', 'params'] as const) {
    for (const key of Object.keys(data[section] ?? {})) {
      if (!ident.test(key)) {
        errors.push(
          new PipelineError(
            `${section === 'stages' ? 'stage id' : 'param name'} '${key}' must match ${IDENT}`,
            positions.at(pointerOf([section, key]), 'key'),
          ),
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Params and --set

/** Types each `--set` value by the declared default: number, boolean, string or JSON list/object. */
export function applySet(
  params: Record<string, Json>,
  sets: Array<[string, string]>,
  positions?: Positions,
): Record<string, Json> {
  for (const [key, text] of sets) {
    if (!Object.hasOwn(params, key)) {
      const known = Object.keys(params);
      throw new PipelineError(
        `--set ${key}=${text}: unknown param '${key}' (declared: ${known.join(', ') || 'none'})` +
          didYouMean(key, known),
      );
    }
    params[key] = typedValue(key, text, params[key], positions);
  }
  return params;
}

function typedValue(key: string, text: string, current: Json, positions?: Positions): Json {
  const where = positions ? ` (declared at ${formatPos(positions.at(pointerOf(['params', key])))})` : '';
  const bad = (what: string) => new PipelineError(`--set ${key}=${text}: ${what}${where}`);
  if (typeof current === 'number') {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n))
      throw bad(`expected a number (the default is ${formatNumber(current)})`);
    return n;
  }
  if (typeof current === 'boolean') {
    if (/^(true|yes|on|1)$/i.test(text)) return true;
    if (/^(false|no|off|0)$/i.test(text)) return false;
    throw bad('expected a boolean (true/false)');
  }
  if (typeof current === 'string') return text;
  let parsed: Json;
  try {
    parsed = JSON.parse(text);
  } catch {
    if (current === null) return text;
    throw bad(`expected JSON ${Array.isArray(current) ? 'list, e.g. [1,2,3]' : 'object'}`);
  }
  const proto = protoKeyPath(parsed);
  if (proto !== undefined) throw bad(`key '__proto__' is not allowed (at ${proto})`);
  if (Array.isArray(current) && !Array.isArray(parsed)) throw bad('expected a JSON list, e.g. [1,2,3]');
  if (isPlainObject(current) && !isPlainObject(parsed)) throw bad('expected a JSON object');
  return parsed;
}

// ---------------------------------------------------------------------------------------------
// Matrix expansion and substitution of params / matrix / pipeline references

/** `id[k1=v1,k2=v2]` with keys in declaration order and numbers in shortest stable form. */
export function instanceName(id: string, matrix: Record<string, Json>): string {
  const keys = Object.keys(matrix);
  if (!keys.length) return id;
  return `${id}[${keys.map((k) => `${k}=${formatValue(matrix[k])}`).join(',')}]`;
}

/** Cartesian product, first axis outermost, values in listed order. */
export function expandMatrix(axes: Array<[string, Json[]]>): Array<Record<string, Json>> {
  let combos: Array<Record<string, Json>> = [{}];
  for (const [key, values] of axes) combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
  return combos;
}

interface StaticScope {
  pipeline: Pipeline;
  node: StageNode;
  matrix?: Record<string, Json>;
  /** Collects the names of the pipeline params referred to. */
  used?: Set<string>;
}

/** Instances a pipeline may have: a sweep beyond this is a typo, and would take minutes and gigabytes to expand. */
export const MAX_INSTANCES = 10_000;

function expandStage(p: Pipeline, node: StageNode): void {
  const axes: Array<[string, Json[]]> = [];
  const matrixUsed = new Set<string>();
  for (const [key, raw] of Object.entries(node.decl.matrix ?? {})) {
    const ptr = pointerOf(['stages', node.id, 'matrix', key]);
    // The axis may be a reference to a list param, or a list whose items reference params.
    const values = substituteStatic(raw as Json, ptr, { pipeline: p, node, used: matrixUsed }, []);
    if (!Array.isArray(values) || values.length === 0 || values.some((v) => v === null || typeof v === 'object')) {
      throw new PipelineError(
        `stage ${node.id} matrix.${key}: must be a non-empty list of scalar values, got ${JSON.stringify(values)}`,
        p.positions.at(ptr),
      );
    }
    axes.push([key, values as Json[]]);
  }
  const count = axes.reduce((n, [, values]) => n * values.length, 1);
  const before = [...p.stages.values()].reduce((n, s) => n + s.instances.length, 0);
  if (before + count > MAX_INSTANCES) {
    const shape = axes.map(([k, v]) => `${k}: ${v.length}`).join(' x ');
    throw new PipelineError(
      `stage ${node.id}: matrix of ${count} instances (${shape}) makes the pipeline exceed ${MAX_INSTANCES} instances`,
      p.positions.at(`${node.pointer}/matrix`),
    );
  }
  const declaredWith = withShellVariables(p, node);
  const seen = new Set<string>();
  for (const matrix of expandMatrix(axes)) {
    const name = instanceName(node.id, matrix);
    if (seen.has(name)) {
      throw new PipelineError(
        `stage ${node.id}: matrix gives two instances named ${name} (duplicate values)`,
        p.positions.at(`${node.pointer}/matrix`),
      );
    }
    seen.add(name);
    const holes: Hole[] = [];
    const scope = { pipeline: p, node, matrix, used: new Set(matrixUsed) };
    const withPtr = `${node.pointer}/with`;
    const withValue = substituteStatic(declaredWith, withPtr, scope, holes) as Record<string, Json>;
    const inst: Instance = {
      name,
      stage: node,
      matrix,
      with: withValue,
      holes,
      deps: [],
      outputs: {},
      resources: resolveResources(p, node),
      heavy: node.decl.heavy ?? node.type.heavy ?? false,
      usedParams: [...scope.used].sort(),
    };
    inst.outputs = declaredOutputs(p, inst);
    node.instances.push(inst);
    p.byName.set(name, inst);
  }
}

/**
 * The `with:` of a stage, where the stage type runs a shell command: the command's references
 * moved into variables of its env param (see shell-refs.ts), so that no value is ever part of
 * the command's text. Errors about a moved reference point at the command.
 */
function withShellVariables(p: Pipeline, node: StageNode): Json {
  const given = (node.decl.with ?? {}) as Record<string, Json>;
  const spec = node.type.shellCommand;
  const cmd = spec ? given[spec.field] : undefined;
  if (!spec || typeof cmd !== 'string') return given;
  const cmdPtr = `${node.pointer}/with${pointerOf([spec.field])}`;
  let rewrite: ReturnType<typeof rewriteShellReferences>;
  try {
    rewrite = rewriteShellReferences(cmd);
  } catch (e) {
    throw new PipelineError(`stage ${node.id} field ${spec.field}: ${(e as Error).message}`, p.positions.at(cmdPtr));
  }
  if (!rewrite) return given;
  const env = given[spec.env] ?? {};
  const envPtr = `${node.pointer}/with${pointerOf([spec.env])}`;
  if (!isPlainObject(env)) {
    throw new PipelineError(
      `stage ${node.id} field ${spec.env}: must be a mapping (the command's references are passed in it)`,
      p.positions.at(envPtr),
    );
  }
  const aliases = new Map<string, NodePos>();
  for (const name of Object.keys(rewrite.vars)) {
    if (Object.hasOwn(env, name)) {
      throw new PipelineError(
        `stage ${node.id} field ${spec.env}.${name}: this name is reserved for the command's references`,
        p.positions.at(`${envPtr}${pointerOf([name])}`, 'key'),
      );
    }
    aliases.set(`${envPtr}${pointerOf([name])}`, { value: p.positions.at(cmdPtr), key: p.positions.at(cmdPtr, 'key') });
  }
  p.positions.docs.push({ file: '(shell references)', text: '', data: null, positions: aliases });
  return { ...given, [spec.field]: rewrite.cmd, [spec.env]: { ...env, ...rewrite.vars } };
}

function resolveResources(p: Pipeline, node: StageNode): Record<string, number> {
  const out: Record<string, number> = { ...(node.type.resources ?? {}) };
  for (const [k, v] of Object.entries(node.decl.resources ?? {})) {
    const ptr = pointerOf(['stages', node.id, 'resources', k]);
    const n = typeof v === 'string' ? substituteStatic(v, ptr, { pipeline: p, node }, []) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
      throw new PipelineError(
        `stage ${node.id} resources.${k}: must be a non-negative integer, got ${JSON.stringify(n)}`,
        p.positions.at(ptr),
      );
    }
    out[k] = n;
  }
  return out;
}

function declaredOutputs(p: Pipeline, inst: Instance): Record<string, OutputDecl> {
  const t = inst.stage.type;
  if (!t.dynamicOutputs) return t.outputs;
  try {
    return { ...t.outputs, ...t.dynamicOutputs(inst.with) };
  } catch (e) {
    throw new PipelineError(
      `stage ${inst.stage.id}: ${(e as Error).message}`,
      p.positions.at(`${inst.stage.pointer}/with`),
    );
  }
}

/**
 * Replaces params / matrix / pipeline references (known at load time) in a value; strings
 * with stage references become holes, filled at run time when upstream outputs exist.
 */
function substituteStatic(
  value: Json,
  ptr: string,
  scope: StaticScope,
  holes: Hole[],
  path: Array<string | number> = [],
): Json {
  if (Array.isArray(value)) return value.map((v, i) => substituteStatic(v, `${ptr}/${i}`, scope, holes, [...path, i]));
  if (isPlainObject(value)) {
    const out: Record<string, Json> = {};
    for (const [k, v] of Object.entries(value))
      setOwn(out, k, substituteStatic(v, ptr + pointerOf([k]), scope, holes, [...path, k]));
    return out;
  }
  if (typeof value !== 'string') return value;
  const pos = scope.pipeline.positions.at(ptr);
  let t: Template | null;
  try {
    t = parseTemplate(value);
  } catch (e) {
    throw new PipelineError(`stage ${scope.node.id} field ${fieldOf(ptr, scope.node)}: ${(e as Error).message}`, pos);
  }
  if (!t) return value;
  const staticValue = (r: Ref): Json => resolveStatic(r, scope, ptr, pos);
  const stageRefs = t.parts.filter(
    (x): x is Extract<Ref, { kind: 'stage' }> => typeof x !== 'string' && x.kind === 'stage',
  );
  if (!stageRefs.length) return renderTemplate(t, staticValue);
  // Keep stage references; substitute the rest now so that the hole only waits on upstream data.
  const parts = t.parts.map((x) =>
    typeof x === 'string' || x.kind === 'stage' ? x : interpolationText(staticValue(x)),
  );
  holes.push({
    path,
    template: { parts, whole: t.whole },
    refs: stageRefs.map((ref) => ({ ref, instances: [] })),
    pos,
  });
  return value;
}

function fieldOf(ptr: string, node: StageNode): string {
  const parts = ptr.split('/').slice(3);
  // A reference moved out of a shell command is reported where the user wrote it.
  const spec = node.type.shellCommand;
  const last = parts[parts.length - 1] ?? '';
  if (
    spec &&
    parts.length === 3 &&
    parts[1] === spec.env &&
    (last.startsWith(REF_VAR_PREFIX) || last.startsWith(NUM_VAR_PREFIX))
  ) {
    return `with.${spec.field} (passed as $${last})`;
  }
  return parts.join('.') || ptr;
}

function resolveStatic(r: Ref, scope: StaticScope, ptr: string, pos: SourcePos): Json {
  const where = `stage ${scope.node.id} field ${fieldOf(ptr, scope.node)}`;
  let base: Json;
  if (r.kind === 'params') {
    if (!Object.hasOwn(scope.pipeline.params, r.name)) {
      throw new PipelineError(
        `${where}: unknown param '${r.name}' in ${r.text} (declared: ${Object.keys(scope.pipeline.params).join(', ') || 'none'})` +
          didYouMean(r.name, Object.keys(scope.pipeline.params)),
        pos,
      );
    }
    base = scope.pipeline.params[r.name];
    scope.used?.add(r.name);
  } else if (r.kind === 'matrix') {
    if (!scope.matrix) throw new PipelineError(`${where}: ${r.text} used outside \`with:\` of a stage`, pos);
    if (!Object.hasOwn(scope.matrix, r.name)) {
      const axes = Object.keys(scope.matrix);
      throw new PipelineError(
        `${where}: ${r.text}: ${axes.length ? `no matrix axis '${r.name}' (axes: ${axes.join(', ')})` : 'this stage has no matrix'}`,
        pos,
      );
    }
    base = scope.matrix[r.name];
  } else if (r.kind === 'pipeline') {
    base = r.name === 'dir' ? scope.pipeline.dir : scope.pipeline.name;
  } else {
    throw new Error('stage references are not static');
  }
  try {
    return applyPath(base, r.path, r.text);
  } catch (e) {
    if (e instanceof RefSyntaxError) throw new PipelineError(`${where}: ${e.message}`, pos);
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// Stage references: dependency edges

function linkInstance(p: Pipeline, inst: Instance): void {
  const deps = new Set<Instance>();
  for (const hole of inst.holes) {
    for (const slot of hole.refs) {
      slot.instances = refTargets(p, inst, slot.ref, hole.pos);
      for (const t of slot.instances) deps.add(t);
    }
  }
  for (const [i, need] of (inst.stage.decl.needs ?? []).entries()) {
    const target = p.stages.get(need);
    if (!target) {
      throw new PipelineError(
        `stage ${inst.stage.id} needs: unknown stage '${need}' (stages: ${[...p.stages.keys()].join(', ')})` +
          didYouMean(need, p.stages.keys()),
        p.positions.at(`${inst.stage.pointer}/needs/${i}`),
      );
    }
    for (const t of target.instances) deps.add(t);
  }
  inst.deps = [...deps];
}

function refTargets(p: Pipeline, inst: Instance, ref: Extract<Ref, { kind: 'stage' }>, pos: SourcePos): Instance[] {
  const where = `stage ${inst.stage.id}: ${ref.text}`;
  const target = p.stages.get(ref.stage);
  if (!target)
    throw new PipelineError(
      `${where}: unknown stage '${ref.stage}' (stages: ${[...p.stages.keys()].join(', ')})` +
        didYouMean(ref.stage, p.stages.keys()),
      pos,
    );
  let instances = target.instances;
  if (ref.filter) {
    for (const [k] of ref.filter) {
      if (!target.matrixKeys.includes(k)) {
        throw new PipelineError(
          `${where}: stage ${ref.stage} has no matrix axis '${k}' (axes: ${target.matrixKeys.join(', ') || 'none'})`,
          pos,
        );
      }
    }
    instances = instances.filter((t) =>
      ref.filter!.every(([k, v]) => formatValue(t.matrix[k]) === normalizeFilterValue(v)),
    );
    if (instances.length !== 1) {
      throw new PipelineError(
        `${where}: the filter matches ${instances.length} instances of ${ref.stage}, it must match ` +
          `exactly one (instances: ${target.instances.map((t) => t.name).join(', ')})`,
        pos,
      );
    }
  }
  for (const t of instances) {
    if (!Object.hasOwn(t.outputs, ref.output)) {
      const declared = Object.keys(t.outputs).join(', ') || 'none';
      throw new PipelineError(
        `${where}: stage ${ref.stage} (${t.stage.type.name}) declares no output '${ref.output}' (outputs: ${declared})`,
        pos,
      );
    }
  }
  return instances;
}

function normalizeFilterValue(v: string): string {
  const unquoted = /^(['"]).*\1$/.test(v) ? v.slice(1, -1) : v;
  const n = Number(unquoted);
  return unquoted === v && unquoted.trim() !== '' && Number.isFinite(n) ? formatNumber(n) : unquoted;
}

/** Whether a relative pointer (as ajv reports it) is at or under a hole of the instance. */
export function underHole(inst: Instance, rel: string): boolean {
  return inst.holes.some((h) => {
    const hp = pointerOf(h.path);
    return rel === hp || rel.startsWith(hp + '/') || hp.startsWith(rel + '/');
  });
}

/** Load-time check of everything literal in `with:` (unknown keys, types, required fields). */
function checkLiteralParams(p: Pipeline, inst: Instance): PipelineError[] {
  const validate = validator(inst.stage.type.params, true);
  const copy = structuredClone(inst.with);
  if (validate(copy)) {
    const problems = inst.stage.type.checkParams?.(inst.with as never) ?? [];
    const where = p.positions.at(`${inst.stage.pointer}/with`);
    return problems.map((m) => new PipelineError(`stage ${inst.name}: ${m}`, where));
  }
  const errors = (validate.errors ?? []).filter(
    (e) =>
      !(
        e.keyword === 'required' &&
        inst.holes.length &&
        underHole(inst, `${e.instancePath}/${(e.params as { missingProperty: string }).missingProperty}`)
      ),
  );
  return schemaErrors(errors, p.positions, `${inst.stage.pointer}/with`, `stage ${inst.name}`, (rel) =>
    underHole(inst, rel),
  );
}

// ---------------------------------------------------------------------------------------------
// Order

function topoSort(p: Pipeline): Instance[] {
  const all = [...allInstances(p)];
  const indegree = new Map(all.map((i) => [i, i.deps.length]));
  const dependents = new Map<Instance, Instance[]>(all.map((i) => [i, []]));
  for (const i of all) for (const d of i.deps) dependents.get(d)!.push(i);
  const order: Instance[] = [];
  const index = new Map(all.map((inst, n) => [inst, n]));
  // Among ready instances, the one declared first: the order reads like the file.
  const ready = all.filter((i) => indegree.get(i) === 0);
  while (ready.length) {
    const next = ready.shift()!;
    order.push(next);
    for (const d of dependents.get(next)!) {
      indegree.set(d, indegree.get(d)! - 1);
      if (indegree.get(d) === 0) {
        const at = ready.findIndex((r) => index.get(r)! > index.get(d)!);
        ready.splice(at < 0 ? ready.length : at, 0, d);
      }
    }
  }
  if (order.length < all.length)
    throw cycleError(
      p,
      all.filter((i) => indegree.get(i)! > 0),
    );
  return order;
}

function cycleError(p: Pipeline, stuck: Instance[]): PipelineError {
  // Walk dependencies among the stuck instances until one repeats: that loop is the cycle.
  const path: Instance[] = [];
  let cur: Instance = stuck[0];
  while (!path.includes(cur)) {
    path.push(cur);
    cur = cur.deps.find((d) => stuck.includes(d))!;
  }
  const cycle = [...path.slice(path.indexOf(cur)), cur];
  const first = cycle[0];
  const hole = first.holes.find((h) => h.refs.some((r) => r.instances.includes(cycle[1])));
  const pos = hole?.pos ?? p.positions.at(`${first.stage.pointer}/needs`);
  return new PipelineError(`stage ${first.stage.id}: dependency cycle: ${cycle.map((i) => i.name).join(' -> ')}`, pos);
}
