/** Unit tests: references, matrix expansion and naming, --set typing, extends, load errors with positions. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../../src/runtime/stage.js';
import { formatNumber, canonicalJson } from '../../src/runtime/format.js';
import { parseTemplate, parseRef, renderTemplate } from '../../src/runtime/refs.js';
import { loadPipeline, instanceName, expandMatrix, applySet, type Pipeline } from '../../src/runtime/load.js';
import { PipelineError } from '../../src/runtime/errors.js';
import shell from '../../src/stages/shell.js';

/** Toy stage types: the runtime is generic, tests need not use real stages. */
const num = defineStage({
  name: 'num',
  version: '1',
  description: 'a number in, a number out',
  params: Type.Object({ x: Type.Number(), note: Type.Optional(Type.String()) }),
  outputs: { y: { kind: 'value', description: 'x' }, file: { kind: 'file', description: 'a file' } },
  async run(ctx) {
    return { y: ctx.params.x, file: 'f' };
  },
});
const list = defineStage({
  name: 'list',
  version: '1',
  description: 'a list in',
  params: Type.Object({ xs: Type.Array(Type.Number()), label: Type.String({ default: 'l' }) }),
  outputs: { sum: { kind: 'value', description: 'sum' } },
  async run(ctx) {
    return { sum: ctx.params.xs.reduce((a, b) => a + b, 0) };
  },
});
const TYPES = [num, list, shell];

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'rt-load-'));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

function load(yaml: string, set: Array<[string, string]> = []): Pipeline {
  const dir = project({ 'p.yaml': yaml });
  return loadPipeline({ file: join(dir, 'p.yaml'), stageTypes: TYPES, set });
}

/** Asserts loading fails with a message matching `re` at line:col of p.yaml. */
function loadFails(yaml: string, line: number, col: number, re: RegExp): void {
  assert.throws(
    () => load(yaml),
    (e: unknown) => {
      assert.ok(e instanceof PipelineError, String(e));
      const text = e.format();
      assert.match(text, new RegExp(`p\\.yaml:${line}:${col}: `), text);
      assert.match(text, re, text);
      return true;
    },
  );
}

test('numbers have one shortest stable form', () => {
  assert.equal(formatNumber(0.0001), '1e-4');
  assert.equal(formatNumber(1e-4), '1e-4');
  assert.equal(formatNumber(3e-4), '3e-4');
  assert.equal(formatNumber(7e-5), '7e-5');
  assert.equal(formatNumber(0.25), '0.25');
  assert.equal(formatNumber(4096), '4096');
  assert.equal(formatNumber(16384), '16384');
  assert.equal(formatNumber(1.5e-7), '1.5e-7');
  assert.equal(instanceName('small', { d_sae: 4096, lr: 0.0001 }), 'small[d_sae=4096,lr=1e-4]');
  assert.equal(instanceName('plain', {}), 'plain');
  assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: 3 }] }), '{"a":[{"c":3,"d":2}],"b":1}');
});

test('matrix expansion: first axis outermost, declaration order', () => {
  const combos = expandMatrix([
    ['a', [1, 2]],
    ['b', ['x', 'y']],
  ]);
  assert.deepEqual(combos, [
    { a: 1, b: 'x' },
    { a: 1, b: 'y' },
    { a: 2, b: 'x' },
    { a: 2, b: 'y' },
  ]);
});

test('references are parsed, not evaluated', () => {
  const t = parseTemplate('${{ stages.small[d_sae=256,lr=1e-4].outputs.fit.params[0] }}')!;
  assert.ok(t.whole);
  assert.deepEqual(t.parts[0], {
    kind: 'stage',
    stage: 'small',
    filter: [
      ['d_sae', '256'],
      ['lr', '1e-4'],
    ],
    output: 'fit',
    path: [{ key: 'params' }, { index: 0 }],
    text: '${{ stages.small[d_sae=256,lr=1e-4].outputs.fit.params[0] }}',
  });
  const e = parseTemplate('lr=${{ params.lr }} n=${{params.n}}')!;
  assert.equal(e.whole, false);
  assert.equal(
    renderTemplate(e, (r) => (r.kind === 'params' && r.name === 'lr' ? 0.0001 : 5)),
    'lr=1e-4 n=5',
  );
  assert.equal(parseTemplate('no refs'), null);
  assert.throws(() => parseRef('process.exit(1)'), /unknown reference root 'process'/);
  assert.throws(() => parseRef('stages.a.result.x'), /expected 'outputs'/);
  assert.throws(() => parseTemplate('${{ params.x '), /unterminated/);
  assert.throws(() => parseRef('params.x + 1'), /unexpected/);
});

test('whole references keep JSON types; matrix stages give lists in instance order; filters pick one', () => {
  const p = load(`
params: { base: 2, tag: run }
stages:
  a:
    uses: num
    matrix: { x: [3, 1, 2] }
    with: { x: \${{ matrix.x }}, note: "x=\${{ matrix.x }} \${{ params.tag }}" }
  sum:
    uses: list
    with: { xs: \${{ stages.a.outputs.y }} }
  pick:
    uses: num
    with: { x: \${{ stages.a[x=1].outputs.y }} }
`);
  assert.deepEqual(
    p.stages.get('a')!.instances.map((i) => i.name),
    ['a[x=3]', 'a[x=1]', 'a[x=2]'],
  );
  assert.deepEqual(p.byName.get('a[x=1]')!.with, { x: 1, note: 'x=1 run' });
  const sum = p.byName.get('sum')!;
  assert.deepEqual(
    sum.deps.map((d) => d.name),
    ['a[x=3]', 'a[x=1]', 'a[x=2]'],
  );
  assert.deepEqual(
    p.byName.get('pick')!.deps.map((d) => d.name),
    ['a[x=1]'],
  );
  assert.deepEqual(
    p.instances.slice(-2).map((i) => i.name),
    ['sum', 'pick'],
  );
});

test('needs: adds ordering edges without data; an unknown one is an error at its position', () => {
  const p = load('stages:\n  a: { uses: num, with: { x: 1 } }\n  b: { uses: num, needs: [a], with: { x: 2 } }\n');
  assert.deepEqual(
    p.byName.get('b')!.deps.map((d) => d.name),
    ['a'],
  );
  assert.deepEqual(p.byName.get('b')!.holes, []);
  loadFails('stages:\n  b: { uses: num, needs: [zz], with: { x: 2 } }\n', 2, 27, /needs: unknown stage 'zz'/);
});

test('matrix axis from a param, and --set typed by the default', () => {
  const yaml = `
params: { sizes: [1, 2], lr: 7.0e-5, on: true, name: a }
stages:
  a: { uses: num, matrix: { x: \${{ params.sizes }} }, with: { x: \${{ matrix.x }} } }
`;
  assert.equal(load(yaml).instances.length, 2);
  assert.deepEqual(
    load(yaml, [['sizes', '[4,8,16]']]).instances.map((i) => i.name),
    ['a[x=4]', 'a[x=8]', 'a[x=16]'],
  );
  const params = applySet({ lr: 7e-5, on: true, name: 'a', n: 3, xs: [1] }, [
    ['lr', '1e-4'],
    ['on', 'false'],
    ['name', '42'],
    ['xs', '[2,3]'],
  ]);
  assert.deepEqual(params, { lr: 1e-4, on: false, name: '42', n: 3, xs: [2, 3] });
  assert.throws(() => applySet({ lr: 1 }, [['lr', 'fast']]), /--set lr=fast: expected a number/);
  assert.throws(() => applySet({ lr: 1 }, [['lrr', '1']]), /unknown param 'lrr' \(declared: lr\)/);
  assert.throws(() => applySet({ on: true }, [['on', 'maybe']]), /expected a boolean/);
  assert.throws(() => applySet({ xs: [1] }, [['xs', '3']]), /expected a JSON list/);
});

test('schema errors point at the YAML node', () => {
  // unknown key in a stage: points at the key
  loadFails('stages:\n  a:\n    uses: num\n    wiht: { x: 1 }\n', 4, 5, /unknown key 'wiht'/);
  // wrong type of a stage param: points at the value, names stage and field
  loadFails('stages:\n  a:\n    uses: num\n    with:\n      x: "three"\n', 5, 10, /stage a field x: must be number/);
  // unknown param key of the stage type
  loadFails('stages:\n  a:\n    uses: num\n    with: { x: 1, y: 2 }\n', 4, 19, /stage a field y: unknown key 'y'/);
  // ... also in a stage whose other fields hold references (checked after resolution)
  loadFails(
    'stages:\n  a:\n    uses: num\n    with: { x: 1 }\n  b:\n    uses: num\n    with:\n      x: ${{ stages.a.outputs.y }}\n      y: 2\n',
    9,
    7,
    /stage b field y: unknown key 'y'/,
  );
  // missing required param
  loadFails('stages:\n  a:\n    uses: num\n    with: { note: hi }\n', 4, 11, /missing required field 'x'/);
  // missing uses
  loadFails('stages:\n  a:\n    with: { x: 1 }\n', 3, 5, /missing required field 'uses'/);
  // unknown stage type
  loadFails('stages:\n  a:\n    uses: nope\n', 3, 11, /unknown stage type 'nope' \(known: list, num, shell\)/);
  // malformed YAML
  loadFails('stages:\n  a: [1, 2\n', 3, 1, /invalid YAML/);
});

test('reference errors point at the field', () => {
  loadFails(
    'params: { a: 1 }\nstages:\n  s:\n    uses: num\n    with:\n      x: ${{ params.b }}\n',
    6,
    10,
    /stage s field with\.x: unknown param 'b' in \$\{\{ params\.b \}\} \(declared: a\)/,
  );
  loadFails(
    'stages:\n  s:\n    uses: num\n    with:\n      x: ${{ stages.t.outputs.y }}\n',
    5,
    10,
    /unknown stage 't'/,
  );
  loadFails(
    'stages:\n  t: { uses: num, with: { x: 1 } }\n  s:\n    uses: num\n    with:\n      x: ${{ stages.t.outputs.nope }}\n',
    6,
    10,
    /stage t \(num\) declares no output 'nope' \(outputs: y, file\)/,
  );
  loadFails('stages:\n  s:\n    uses: num\n    with:\n      x: ${{ matrix.k }}\n', 5, 10, /this stage has no matrix/);
  loadFails(
    'stages:\n  t: { uses: num, matrix: { x: [1, 2] }, with: { x: "${{ matrix.x }}" } }\n  s:\n    uses: ' +
      'num\n    with:\n      x: ${{ stages.t[x=3].outputs.y }}\n',
    6,
    10,
    /matches 0 instances of t/,
  );
  loadFails(
    'stages:\n  a:\n    uses: num\n    with: { x: "${{ stages.b.outputs.y }}" }\n  b:\n    uses: num\n    ' +
      'with: { x: "${{ stages.a.outputs.y }}" }\n',
    4,
    16,
    /dependency cycle: a -> b -> a/,
  );
  // shell outputs are declared by its params: a reference to an undeclared one fails
  loadFails(
    'stages:\n  sh: { uses: shell, with: { cmd: "true", outputs: { a: a.txt } } }\n  s:\n    uses: ' +
      'shell\n    with: { cmd: "cat ${{ stages.sh.outputs.b }}" }\n',
    5,
    18,
    /declares no output 'b' \(outputs: a\)/,
  );
});

test('extends: params and stages overridden, with: merged deeply, null removes a stage', () => {
  const dir = project({
    'pipelines/base.yaml': `name: base
params: { a: 1, b: 2 }
stages:
  one: { uses: num, with: { x: \${{ params.a }}, note: base } }
  two: { uses: num, with: { x: \${{ params.b }} } }
  three: { uses: num, with: { x: 3 } }
`,
    'pipelines/child.yaml': `extends: base.yaml
name: child
params: { a: 10 }
stages:
  two: { with: { note: child } }
  three: null
  four: { uses: num, with: { x: \${{ stages.one.outputs.y }} } }
`,
  });
  const p = loadPipeline({ file: join(dir, 'pipelines/child.yaml'), stageTypes: TYPES });
  assert.equal(p.name, 'child');
  assert.deepEqual({ ...p.params }, { a: 10, b: 2 }); // a null-prototype object
  assert.deepEqual([...p.stages.keys()], ['one', 'two', 'four']);
  assert.deepEqual(p.byName.get('one')!.with, { x: 10, note: 'base' });
  assert.deepEqual(p.byName.get('two')!.with, { x: 2, note: 'child' });
  // an error in a stage defined by the parent points into the parent file
  writeFileSync(join(dir, 'pipelines/child.yaml'), 'extends: base.yaml\nstages:\n  one: { with: { x: oops } }\n');
  assert.throws(
    () => loadPipeline({ file: join(dir, 'pipelines/child.yaml'), stageTypes: TYPES }),
    (e: unknown) => {
      assert.match((e as PipelineError).format(), /child\.yaml:3:21: stage one field x: must be number/);
      return true;
    },
  );
  writeFileSync(join(dir, 'pipelines/child.yaml'), 'extends: base.yaml\nstages:\n  one: { with: { bad: 1 } }\n');
  assert.throws(
    () => loadPipeline({ file: join(dir, 'pipelines/child.yaml'), stageTypes: TYPES }),
    /child\.yaml:3:18: stage one field bad: unknown key/,
  );
  writeFileSync(join(dir, 'pipelines/base.yaml'), 'extends: child.yaml\nstages: {}\n');
  assert.throws(() => loadPipeline({ file: join(dir, 'pipelines/child.yaml'), stageTypes: TYPES }), /extends cycle/);
});
