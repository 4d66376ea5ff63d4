/** Pipeline-level `defaults:` per stage type: merged under `with:`, same keys as written out, errors with positions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../src/runtime/stage.js';
import { loadPipeline, type Pipeline } from '../../src/runtime/load.js';
import { evaluate, type InstanceResult } from '../../src/runtime/evaluate.js';
import { FileHashMemo } from '../../src/runtime/hash.js';
import { PipelineError } from '../../src/runtime/errors.js';
import type { Manifest } from '../../src/runtime/cache.js';

const train = defineStage({
  name: 'train',
  version: '1',
  description: 'toy trainer',
  params: Type.Object({
    x: Type.Number(),
    lr: Type.Number({ default: 0.1 }),
    steps: Type.Integer({ default: 10 }),
    opt: Type.Optional(Type.Object({ beta: Type.Number(), eps: Type.Number() })),
    note: Type.Optional(Type.String()),
  }),
  outputs: { y: { kind: 'value', description: 'y' } },
  async run(ctx) {
    return { y: ctx.params.x };
  },
});
const other = defineStage({
  name: 'other',
  version: '1',
  description: 'another type',
  params: Type.Object({ x: Type.Number() }),
  outputs: { y: { kind: 'value', description: 'y' } },
  async run(ctx) {
    return { y: ctx.params.x };
  },
});
const TYPES = [train, other];

function write(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rt-defaults-'));
  for (const [rel, text] of Object.entries(files)) writeFileSync(join(dir, rel), text);
  return dir;
}

function load(yaml: string): Pipeline {
  return loadPipeline({ file: join(write({ 'p.yaml': yaml }), 'p.yaml'), stageTypes: TYPES });
}

function loadFails(yaml: string, where: string, re: RegExp): void {
  assert.throws(
    () => load(yaml),
    (e: unknown) => {
      assert.ok(e instanceof PipelineError, String(e));
      assert.match(e.format(), new RegExp(`p\\.yaml:${where}: `), e.format());
      assert.match(e.format(), re, e.format());
      return true;
    },
  );
}

const WITH_DEFAULTS = `params: { lr: 0.5, steps: 7 }
defaults:
  train:
    lr: \${{ params.lr }}
    steps: \${{ params.steps }}
    opt: { beta: 0.9, eps: 1.0e-8 }
    note: from defaults
stages:
  base: { uses: other, with: { x: 3 } }
  sweep:
    uses: train
    matrix: { x: [1, 2] }
    with: { x: \${{ matrix.x }} }
  final:
    uses: train
    with:
      x: \${{ stages.base.outputs.y }}
      steps: 100
      opt: { eps: 1.0e-6 }
`;

const WRITTEN_OUT = `params: { lr: 0.5, steps: 7 }
stages:
  base: { uses: other, with: { x: 3 } }
  sweep:
    uses: train
    matrix: { x: [1, 2] }
    with:
      x: \${{ matrix.x }}
      lr: \${{ params.lr }}
      steps: \${{ params.steps }}
      opt: { beta: 0.9, eps: 1.0e-8 }
      note: from defaults
  final:
    uses: train
    with:
      x: \${{ stages.base.outputs.y }}
      lr: \${{ params.lr }}
      steps: 100
      opt: { beta: 0.9, eps: 1.0e-6 }
      note: from defaults
`;

test('defaults: merged under every stage of the type; the stage wins, key by key and deeply', () => {
  const p = load(WITH_DEFAULTS);
  assert.deepEqual(p.byName.get('base')!.with, { x: 3 });
  assert.deepEqual(p.byName.get('sweep[x=2]')!.with, {
    x: 2,
    lr: 0.5,
    steps: 7,
    opt: { beta: 0.9, eps: 1e-8 },
    note: 'from defaults',
  });
  const final = p.byName.get('final')!;
  assert.deepEqual(
    { ...final.with, x: 0 },
    { x: 0, lr: 0.5, steps: 100, opt: { beta: 0.9, eps: 1e-6 }, note: 'from defaults' },
  );
  // A param referred to from defaults is a param the instance uses (status explains its changes).
  assert.deepEqual(final.usedParams, ['lr']);
  assert.deepEqual(p.byName.get('sweep[x=1]')!.usedParams, ['lr', 'steps']);
});

/** A committed entry whose output y is 3, as the toy stages would give for the upstream `base`. */
function committed(key: string, instance: string): InstanceResult {
  const manifest: Manifest = {
    format: 'pipeline-cache/1',
    key,
    uses: 'other',
    version: '1',
    instance,
    files: {},
    outputs: { y: { kind: 'value', value: 3, digest: 'd3' } },
    digest: 'd3',
  };
  return { key, manifest, outputs: { y: { run: 3, key: 3 } } };
}

test('defaults: the same cache keys as the defaults written out in each with:', async () => {
  const keys = async (yaml: string) => {
    const dir = write({ 'p.yaml': yaml });
    const p = loadPipeline({ file: join(dir, 'p.yaml'), stageTypes: TYPES });
    const memo = new FileHashMemo(join(dir, 'filehash.json'));
    const results = new Map<(typeof p.instances)[number], InstanceResult>();
    const out: Record<string, string> = {};
    for (const inst of p.instances) {
      const r = await evaluate(p, inst, results, memo);
      out[inst.name] = r.parts.key;
      results.set(inst, committed(r.parts.key, inst.name));
    }
    return out;
  };
  const a = await keys(WITH_DEFAULTS);
  const b = await keys(WRITTEN_OUT);
  assert.deepEqual(Object.keys(a), ['base', 'sweep[x=1]', 'sweep[x=2]', 'final']);
  assert.deepEqual(a, b);
  // ... and a default that changes changes the key of each stage that takes it.
  const c = await keys(WITH_DEFAULTS.replace('note: from defaults', 'note: changed'));
  assert.equal(c.base, a.base);
  assert.notEqual(c.final, a.final);
  assert.notEqual(c['sweep[x=1]'], a['sweep[x=1]']);
});

test('defaults: unknown stage types and params are errors at the key; a bad value points at its default', () => {
  loadFails(
    'defaults:\n  trian: { lr: 1 }\nstages: {}\n',
    '2:3',
    /defaults: unknown stage type 'trian' \(known: other, train\)/,
  );
  loadFails(
    'defaults:\n  train:\n    lr: 1\n    sptes: 2\nstages: {}\n',
    '4:5',
    /defaults\.train: unknown param 'sptes' of stage type train/,
  );
  loadFails(
    'defaults:\n  train:\n    lr: fast\nstages:\n  a: { uses: train, with: { x: 1 } }\n',
    '3:9',
    /stage a field lr: must be number/,
  );
  loadFails('defaults: [1]\nstages: {}\n', '1:11', /defaults/);
});

test('defaults: extends merges them key by key; the child may add a stage type', () => {
  const dir = write({
    'base.yaml': 'defaults:\n  train: { lr: 0.2, steps: 5 }\nstages:\n  a: { uses: train, with: { x: 1 } }\n',
    'child.yaml':
      'extends: base.yaml\ndefaults:\n  train: { steps: 50 }\n  other: { x: 9 }\nstages:\n  b: { uses: other }\n',
  });
  const p = loadPipeline({ file: join(dir, 'child.yaml'), stageTypes: TYPES });
  assert.deepEqual(p.byName.get('a')!.with, { x: 1, lr: 0.2, steps: 50 });
  assert.deepEqual(p.byName.get('b')!.with, { x: 9 });
});
