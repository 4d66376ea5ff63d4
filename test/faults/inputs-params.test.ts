/**
 * Params and references see only what the pipeline declares: names inherited from
 * Object.prototype (`toString`, `constructor`, `__proto__`) are unknown, and a `__proto__`
 * key, in YAML or in a `--set` JSON value, is refused instead of changing an object's prototype.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cli, makeProject, type CliResult } from '../runtime/helpers.js';

function refused(r: CliResult, re: RegExp): void {
  assert.equal(r.code, 2, `exit ${r.code}\n${r.stderr}`);
  assert.match(r.stderr, re);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/);
}

const OK = `params: { n: 1, cfg: { a: 1 } }
stages:
  s:
    uses: shell
    with:
      cmd: echo "\${{ params.n }} \${{ params.cfg }}" > "$OUT/n"
      outputs: { n: n }
`;

test('--set refuses names inherited from Object.prototype, and __proto__ inside JSON values', async () => {
  const p = makeProject('params-');
  p.write('pipelines/ok.yaml', OK);
  for (const name of ['toString', 'constructor', '__proto__', 'hasOwnProperty']) {
    refused(
      await cli(['run', 'ok', '--set', `${name}={"x":1}`], p.dir),
      new RegExp(`--set ${name}=.*: unknown param '${name}' \\(declared: n, cfg\\)`),
    );
  }
  refused(
    await cli(['run', 'ok', '--set', 'cfg={"__proto__":{"polluted":1}}'], p.dir),
    /--set cfg=.*: key '__proto__' is not allowed/,
  );
  refused(
    await cli(['run', 'ok', '--set', 'cfg={"a":{"constructor":{"prototype":1},"__proto__":1}}'], p.dir),
    /--set cfg=.*: key '__proto__' is not allowed/,
  );
  assert.equal(p.count('s'), 0);
});

test('references to inherited names are unknown, at their position', async () => {
  const p = makeProject('params-');
  const cases: Array<[string, RegExp]> = [
    [
      '${{ params.constructor }}',
      /p\.yaml:6:17: stage s field with\.env\.X: unknown param 'constructor' in \$\{\{ params\.constructor \}\} \(declared: n, cfg\)/,
    ],
    ['${{ params.toString }}', /p\.yaml:6:17: .*unknown param 'toString'/],
    ['${{ params.cfg.constructor }}', /p\.yaml:6:17: .*no field 'constructor' \(has: a\)/],
    ['${{ params.cfg.__proto__ }}', /p\.yaml:6:17: .*no field '__proto__' \(has: a\)/],
    ['${{ matrix.toString }}', /p\.yaml:6:17: .*this stage has no matrix/],
    ['${{ stages.a.outputs.constructor }}', /p\.yaml:6:17: .*declares no output 'constructor' \(outputs: n\)/],
  ];
  for (const [ref, re] of cases) {
    p.write(
      'pipelines/p.yaml',
      `params: { n: 1, cfg: { a: 1 } }
stages:
  s:
    uses: shell
    with:
      env: { X: ${ref} }
      cmd: "true"
  a: { uses: shell, with: { cmd: "true", outputs: { n: n } } }
`,
    );
    refused(await cli(['validate', 'p'], p.dir), re);
  }
});

test('a __proto__ key anywhere in a pipeline file is refused at its position', async () => {
  const p = makeProject('params-');
  const files: Array<[string, RegExp]> = [
    ['params:\n  __proto__: { polluted: 1 }\nstages: {}\n', /p\.yaml:2:3: key '__proto__' is not allowed/],
    [
      'stages:\n  s:\n    uses: shell\n    with:\n      cmd: "true"\n      env: { __proto__: { X: 1 } }\n',
      /p\.yaml:6:14: key '__proto__' is not allowed/,
    ],
    ['stages:\n  __proto__: { uses: shell, with: { cmd: "true" } }\n', /p\.yaml:2:3: key '__proto__' is not allowed/],
    ['"__proto__": 1\nstages: {}\n', /p\.yaml:1:1: key '__proto__' is not allowed/],
  ];
  for (const [text, re] of files) {
    p.write('pipelines/p.yaml', text);
    refused(await cli(['validate', 'p'], p.dir), re);
  }
});
