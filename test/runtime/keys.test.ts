/** Unit tests: cache keys (what goes in, what does not) and the staleness explanations. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../src/runtime/stage.js';
import { loadPipeline } from '../../src/runtime/load.js';
import { evaluate, type InstanceResult } from '../../src/runtime/evaluate.js';
import { FileHashMemo } from '../../src/runtime/hash.js';
import { staleReasons } from '../../src/runtime/status.js';
import type { Manifest } from '../../src/runtime/cache.js';

const num = defineStage({
  name: 'num',
  version: '1',
  description: 'x in, y out',
  params: Type.Object({ x: Type.Number(), label: Type.String({ default: 'l' }), data: Type.Optional(Type.String()) }),
  outputs: { y: { kind: 'value', description: 'y' }, f: { kind: 'file', description: 'f' } },
  inputFiles: (p) => (p.data ? [p.data] : []),
  async run() {
    return { y: 1, f: 'f' };
  },
});

const YAML = `params: { x: 1 }
stages:
  up: { uses: num, with: { x: \${{ params.x }}, data: data.txt } }
  down: { uses: num, with: { x: \${{ stages.up.outputs.y }}, label: "\${{ pipeline.dir }}/\${{ stages.up.outputs.f }}" } }
`;

function setup(yaml = YAML) {
  const dir = mkdtempSync(join(tmpdir(), 'rt-keys-'));
  mkdirSync(join(dir, 'p'));
  writeFileSync(join(dir, 'p/p.yaml'), yaml);
  writeFileSync(join(dir, 'p/data.txt'), 'hello');
  return dir;
}

/** A fake committed upstream entry with given output value and file digest. */
function upstream(key: string, y: number, fileDigest: string): InstanceResult {
  const manifest: Manifest = {
    format: 'pipeline-cache/1',
    key,
    uses: 'num',
    version: '1',
    instance: 'up',
    files: {},
    outputs: { y: { kind: 'value', value: y, digest: `d${y}` }, f: { kind: 'file', path: 'f', digest: fileDigest } },
    digest: `${y}-${fileDigest}`,
  };
  return {
    key,
    manifest,
    outputs: { y: { run: y, key: y }, f: { run: `/art/cache/${key}/out/f`, key: `sha256:${fileDigest}` } },
  };
}

async function keys(dir: string, set: Array<[string, string]> = [], up = upstream('k1', 5, 'aaa')) {
  const p = loadPipeline({ file: join(dir, 'p/p.yaml'), stageTypes: [num], set });
  const memo = new FileHashMemo(join(dir, 'filehash.json'));
  const results = new Map([[p.byName.get('up')!, up]]);
  const a = await evaluate(p, p.byName.get('up')!, results, memo);
  const b = await evaluate(p, p.byName.get('down')!, results, memo);
  return { up: a, down: b };
}

test('key parts: resolved params with defaults, input digests, upstream digests', async () => {
  const dir = setup();
  const { up, down } = await keys(dir);
  assert.deepEqual(up.params, { x: 1, data: 'data.txt', label: 'l' });
  assert.deepEqual(Object.keys(up.parts.inputs), ['data.txt']);
  // The stage receives the absolute path; the key holds the content digest and no absolute folder.
  assert.equal(down.params.label, `${join(dir, 'p')}//art/cache/k1/out/f`);
  assert.deepEqual(down.parts.params, { x: 5, label: '${{ pipeline.dir }}/sha256:aaa' });
  assert.deepEqual(down.parts.upstream, { up: '5-aaa' });
  assert.deepEqual(down.parts.pipelineParams, {});
  assert.deepEqual(up.parts.pipelineParams, { x: 1 });
});

test('keys: stable across folders, change with params and inputs, not with upstream entry identity', async () => {
  const a = await keys(setup());
  const b = await keys(setup());
  assert.equal(a.up.parts.key, b.up.parts.key, 'same pipeline in another folder: same keys');
  assert.equal(a.down.parts.key, b.down.parts.key);
  const changed = await keys(setup(), [['x', '2']]);
  assert.notEqual(changed.up.parts.key, a.up.parts.key);
  // Early cutoff: the upstream re-ran under another key but produced the same outputs.
  const sameOut = await keys(setup(), [['x', '2']], upstream('k2', 5, 'aaa'));
  assert.equal(sameOut.down.parts.key, a.down.parts.key);
  const otherFile = await keys(setup(), [], upstream('k1', 5, 'bbb'));
  assert.notEqual(otherFile.down.parts.key, a.down.parts.key);
  const dir = setup();
  writeFileSync(join(dir, 'p/data.txt'), 'changed');
  assert.notEqual((await keys(dir)).up.parts.key, a.up.parts.key);
  // An explicit default is the same params as an omitted one.
  const explicit = await keys(setup(YAML.replace('data: data.txt }', 'data: data.txt, label: l }')));
  assert.equal(explicit.up.parts.key, a.up.parts.key);
});

test('stale reasons name what changed', () => {
  const base = {
    uses: 'num',
    version: '1',
    params: { x: 1, lr: 7e-5 },
    inputs: { 'a.csv': 'h1' },
    upstream: { norm: 'o1' },
    pipelineParams: { lr: 7e-5 },
    key: 'k',
  };
  const entry = { ...base, outputs: 'o' };
  assert.deepEqual(staleReasons(undefined, base), ['never run']);
  assert.deepEqual(
    staleReasons(entry, { ...base, key: 'k2', params: { x: 1, lr: 1e-4 }, pipelineParams: { lr: 1e-4 } }),
    ['param lr 7e-5 -> 1e-4'],
  );
  assert.deepEqual(staleReasons(entry, { ...base, key: 'k2', params: { x: 2, lr: 7e-5 } }), ['with.x 1 -> 2']);
  assert.deepEqual(staleReasons(entry, { ...base, key: 'k2', version: '2' }), ['stage version 1 -> 2']);
  assert.deepEqual(staleReasons(entry, { ...base, key: 'k2', inputs: { 'a.csv': 'h2', 'b.csv': 'h' } }), [
    'input a.csv changed',
    'input b.csv added',
  ]);
  assert.deepEqual(staleReasons(entry, { ...base, key: 'k2', upstream: { norm: 'o2' } }), ['upstream norm changed']);
});
