/**
 * What a newcomer sees on the usual first mistakes: every message names the file, line and
 * field, exits 2 (nothing ran) and says what to do, and every command it suggests works as
 * printed (a suggested `pipeline run` keeps the --set and --artifacts that were given).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { closest } from '../../src/runtime/suggest.js';
import { cli, makeProject } from './helpers.js';

const ONE_STAGE =
  `params: { n: 2 }\nstages:\n  s:\n    uses: shell\n    matrix: { k: [1, 2] }\n` +
  `    with: { cmd: "echo \${{ params.n }} > \\"$OUT/n\\"", outputs: { n: n } }\n`;

function noTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /\n\s+at |internal error/);
}

test('show of a stage not computed suggests the run that computes it, with the same --set and --artifacts', async () => {
  const p = makeProject('newcomer-');
  p.write('pipelines/p.yaml', ONE_STAGE);
  const artifacts = join(p.dir, 'my artifacts');
  let r = await cli(['run', 'p', '--artifacts', artifacts], p.dir);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['show', 'p', 's[k=1]', '--set', 'n=3', '--artifacts', artifacts], p.dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /s\[k=1\] is not computed/);
  // The instance name holds [ ]: quoted, as the path with a space is, so the line runs as printed.
  const hint = r.stderr.split('\n').find((l) => l.startsWith('run: '));
  assert.equal(hint, `run: pipeline run pipelines/p.yaml 's[k=1]' --set n=3 --artifacts '${artifacts}'`);
  r = await cli(
    hint!
      .slice('run: pipeline '.length)
      .match(/'[^']*'|\S+/g)!
      .map((w) => w.replace(/^'|'$/g, '')),
    p.dir,
  );
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['show', 'p', 's[k=1]', '--set', 'n=3', '--artifacts', artifacts], p.dir);
  assert.equal(r.code, 0, r.stderr);
});

test('a key in the wrong place names the file once, the line and the field', async () => {
  const p = makeProject('newcomer-');
  // `outputs:` belongs inside `with:`; one level too shallow it is a key of the stage.
  p.write('pipelines/p.yaml', 'stages:\n  s:\n    uses: shell\n    with: { cmd: "true" }\n    outputs: { n: n }\n');
  const r = await cli(['validate', 'p'], p.dir);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.trim(),
    "pipelines/p.yaml:5:5: field stages.s.outputs: unknown key 'outputs' " +
      '(allowed: uses, description, with, matrix, needs, resources, heavy)',
  );
});

test('bad indentation and an unquoted ": " in a flow mapping say what to look for', async () => {
  const p = makeProject('newcomer-');
  const cases: Array<[string, string, RegExp]> = [
    // `with:` one space deeper than `uses:`, its sibling.
    [
      'stages:\n  s:\n    uses: shell\n     with:\n      cmd: "true"\n',
      'pipelines/p.yaml:3:11: invalid YAML: ',
      /indented deeper than the line above/,
    ],
    // A key without its colon.
    ['stages:\n  s:\n    uses shell\n    with: {}\n', 'pipelines/p.yaml:3:5: invalid YAML: ', /missing its ':'/],
    ['stages:\n  s:\n    uses: shell\n    with: { cmd: echo a: b }\n', 'pipelines/p.yaml:4:18: ', /quote the value/],
  ].map(([text, at, hint]) => [text as string, at as string, hint as RegExp]);
  for (const [text, at, hint] of cases) {
    p.write('pipelines/p.yaml', text);
    const r = await cli(['validate', 'p'], p.dir);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.startsWith(at), r.stderr);
    assert.match(r.stderr, hint);
    noTrace(r.stderr);
  }
});

test('the usual first mistakes: exit 2, file:line:col, the field, no stack trace', async () => {
  const p = makeProject('newcomer-');
  const cases: Array<[string, string, RegExp]> = [
    // A typo in a stage param.
    [
      'stages:\n  b:\n    uses: flop-budget\n    with: { d_saee: 100 }\n',
      'pipelines/p.yaml:4:13: ',
      /stage b field d_saee: unknown key 'd_saee' \(allowed: .*d_sae.*\)\. Did you mean 'd_sae'\?/,
    ],
    // An unknown stage type.
    [
      'stages:\n  s:\n    uses: shel\n',
      'pipelines/p.yaml:3:11: ',
      /stage s: unknown stage type 'shel' \(known: .*shell.*\)\. Did you mean 'shell'\?/,
    ],
    // A misspelt stage in a reference.
    [
      'stages:\n  words:\n    uses: shell\n    with: { cmd: "true", outputs: { x: x } }\n' +
        '  count:\n    uses: shell\n    with: { cmd: "cat ${{ stages.word.outputs.x }}" }\n',
      'pipelines/p.yaml:7:',
      /unknown stage 'word' \(stages: words, count\)\. Did you mean 'words'\?/,
    ],
    // A cycle.
    [
      'stages:\n  a:\n    uses: shell\n    with: { cmd: "echo ${{ stages.b.outputs.x }}", outputs: { x: x } }\n' +
        '  b:\n    uses: shell\n    with: { cmd: "echo ${{ stages.a.outputs.x }}", outputs: { x: x } }\n',
      'pipelines/p.yaml:',
      /dependency cycle: a -> b -> a/,
    ],
    // A stage with nothing under it (its keys indented too little, say).
    [
      'stages:\n  s:\n  uses: shell\n',
      'pipelines/p.yaml:2:5: ',
      /field stages\.s: must be a mapping \(key: value lines\), got nothing \(null\)/,
    ],
    // extends: a file that is not there.
    [
      'extends: base.yaml\nstages: {}\n',
      'pipelines/p.yaml:1:10: ',
      /extends: pipeline file pipelines\/base\.yaml not found/,
    ],
  ];
  for (const [text, at, message] of cases) {
    p.write('pipelines/p.yaml', text);
    const r = await cli(['validate', 'p'], p.dir);
    assert.equal(r.code, 2, r.stderr);
    assert.ok(r.stderr.startsWith(at), r.stderr);
    assert.match(r.stderr, message);
    noTrace(r.stderr);
  }
  p.write('pipelines/p.yaml', ONE_STAGE);
  const wrongSet = await cli(['run', 'p', '--set', 'm=3'], p.dir);
  assert.equal(wrongSet.code, 2);
  // One letter is too short to guess from.
  assert.match(wrongSet.stderr, /--set m=3: unknown param 'm' \(declared: n\)\n/);
  const typo = await cli(['run', 'p', '--set', 'N=3'], p.dir);
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /unknown param 'N' \(declared: n\)\. Did you mean 'n'\?/);
  const type = await cli(['stages', 'trian-sae'], p.dir);
  assert.equal(type.code, 2);
  assert.match(type.stderr, /unknown stage type trian-sae \(known: .*\)\. Did you mean 'train-sae'\?/);
  const missing = await cli(['run', 'nope'], p.dir);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /pipeline file nope not found/);
});

test('validate counts in words a newcomer reads: 1 stage, 2 instances', async () => {
  const p = makeProject('newcomer-');
  p.write('pipelines/p.yaml', ONE_STAGE);
  const r = await cli(['validate', 'p'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok: pipelines/p.yaml: pipeline p, 1 stage, 2 instances');
});

test('did you mean: one close name, never a guess among several or from too few letters', () => {
  assert.equal(closest('shel', ['shell', 'report']), 'shell');
  assert.equal(closest('trian', ['train', 'other']), 'train');
  assert.equal(closest('final_l0_coef', ['final_l0_coefficient', 'l0_coefficient']), 'final_l0_coefficient');
  assert.equal(closest('LR', ['lr', 'n']), 'lr');
  assert.equal(closest('m', ['n']), undefined);
  assert.equal(closest('d_sa', ['d_sae', 'd_sb']), undefined);
  assert.equal(closest('zzzzzz', ['shell']), undefined);
});

test('validate: an input file that is not there, for a stage nothing runs before, is an error at its line', async () => {
  const p = makeProject('newcomer-');
  p.write(
    'pipelines/p.yaml',
    'stages:\n  a:\n    uses: shell\n    with:\n      cmd: cat "$INPUT_0" > "$OUT/x"\n' +
      '      inputs: [data/nothere.txt]\n      outputs: { x: x }\n',
  );
  let r = await cli(['validate', 'p'], p.dir);
  assert.equal(r.code, 2, r.stderr);
  assert.equal(
    r.stderr.trim(),
    `pipelines/p.yaml:6:16: stage a: input data/nothere.txt not found (looked for ${p.pipelines}/data/nothere.txt)`,
  );
  // After a stage it `needs`, the file may be that stage's doing: the run judges it then.
  p.write(
    'pipelines/p.yaml',
    'stages:\n  gen:\n    uses: shell\n    with: { cmd: "mkdir -p data && date > data/made.txt" }\n' +
      '  a:\n    uses: shell\n    needs: [gen]\n    with:\n      cmd: cat "$INPUT_0" > "$OUT/x"\n' +
      '      inputs: [data/made.txt]\n      outputs: { x: x }\n',
  );
  r = await cli(['validate', 'p'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['run', 'p'], p.dir);
  assert.equal(r.code, 0, r.stderr);
});
