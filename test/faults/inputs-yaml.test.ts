/**
 * The malformed-input corpus: each file is refused with file:line:col and a message naming
 * the problem (exit 2 through the CLI), never a stack trace or an internal error (exit 70),
 * and fast (a hostile file must not cost minutes or gigabytes before it is refused).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPipeline } from '../../src/runtime/load.js';
import { PipelineError } from '../../src/runtime/errors.js';
import { allStageTypes } from '../../src/stages/index.js';
import { cli, makeProject } from '../runtime/helpers.js';

interface Case {
  name: string;
  text: string | Buffer;
  line: number;
  col: number;
  message: RegExp;
}

const SHELL = (withBody: string) => `stages:\n  s:\n    uses: shell\n    with: ${withBody}\n`;

/** Nine levels of nine aliases: 9^9 values if expanded. */
function billionLaughs(): string {
  const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++)
    lines.push(
      `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]`,
    );
  return `params:\n${lines.map((l) => `  ${l}`).join('\n')}\nstages: {}\n`;
}

function nonUtf8(bad: number[]): Buffer {
  const head = Buffer.from('stages:\n  s:\n    uses: shell\n    with: { cmd: "echo ');
  return Buffer.concat([head, Buffer.from(bad), Buffer.from('" }\n')]);
}

const CASES: Case[] = [
  {
    name: 'billion laughs',
    text: billionLaughs(),
    line: 3,
    col: 12,
    message: /aliases expand to too many values \(more than 1000 alias expansions\)/,
  },
  { name: 'unknown tag', text: 'name: !foo x\nstages: {}\n', line: 1, col: 7, message: /tag !foo is not allowed/ },
  {
    name: '!!binary',
    text: 'params:\n  b: !!binary aGk=\nstages: {}\n',
    line: 2,
    col: 6,
    message: /tag !!binary is not allowed/,
  },
  {
    name: '!!timestamp',
    text: 'params:\n  t: !!timestamp 2001-12-14\nstages: {}\n',
    line: 2,
    col: 6,
    message: /tag !!timestamp is not allowed/,
  },
  {
    name: '!!set',
    text: 'params:\n  s: !!set { a, b }\nstages: {}\n',
    line: 2,
    col: 6,
    message: /tag !!set is not allowed/,
  },
  {
    name: 'tag on a key',
    text: 'params:\n  !custom k: 1\nstages: {}\n',
    line: 2,
    col: 3,
    message: /tag !custom is not allowed/,
  },
  {
    name: 'invalid UTF-8 byte',
    text: nonUtf8([0xff]),
    line: 4,
    col: 24,
    message: /not UTF-8: invalid byte sequence \\xff/,
  },
  {
    name: 'overlong UTF-8',
    text: nonUtf8([0xc0, 0xaf]),
    line: 4,
    col: 24,
    message: /not UTF-8: invalid byte sequence \\xc0\\xaf/,
  },
  { name: 'UTF-16 surrogate in UTF-8', text: nonUtf8([0xed, 0xa0, 0x80]), line: 4, col: 24, message: /not UTF-8/ },
  { name: 'truncated UTF-8', text: nonUtf8([0xe2, 0x82]), line: 4, col: 24, message: /not UTF-8/ },
  {
    name: 'file over 1 MiB',
    text: `# ${'x'.repeat(1 << 20)}\nstages: {}\n`,
    line: 1,
    col: 1,
    message: /more than the 1048576-byte limit/,
  },
  {
    name: 'nesting 100 deep',
    text: `params:\n  p: ${'['.repeat(100)}${']'.repeat(100)}\nstages: {}\n`,
    line: 2,
    col: 69,
    message: /nested more than 64 levels deep/,
  },
  {
    name: 'duplicate key',
    text: 'stages: {}\nstages: {}\n',
    line: 2,
    col: 1,
    message: /invalid YAML: Map keys must be unique/,
  },
  { name: 'tab indentation', text: 'stages:\n\ts: {}\n', line: 2, col: 1, message: /invalid YAML/ },
  { name: 'unclosed flow', text: 'stages: { s: { uses: shell\n', line: 2, col: 1, message: /invalid YAML/ },
  { name: 'empty file', text: '', line: 1, col: 1, message: /missing required field 'stages'/ },
  { name: 'a list at the top', text: '- a\n- b\n', line: 1, col: 1, message: /must be a mapping/ },
  { name: 'no stages', text: 'name: x\n', line: 1, col: 1, message: /missing required field 'stages'/ },
  {
    name: '__proto__ key',
    text: 'params: { __proto__: 1 }\nstages: {}\n',
    line: 1,
    col: 11,
    message: /key '__proto__' is not allowed/,
  },
  {
    name: '300x300x300 matrix',
    text:
      `params: { a: [${Array.from({ length: 300 }, (_, i) => i).join(',')}] }\nstages:\n  s:\n    ` +
      `uses: shell\n    matrix: { x: \${{ params.a }}, y: \${{ params.a }}, z: \${{ params.a }} }\n    ` +
      `with: { cmd: "true" }\n`,
    line: 5,
    col: 13,
    message:
      /stage s: matrix of 27000000 instances \(x: 300 x y: 300 x z: 300\) makes the pipeline exceed 10000 instances/,
  },
  {
    name: 'rows: 1e300',
    text: 'stages:\n  d:\n    uses: synthetic-activations\n    with: { rows: 1e300 }\n',
    line: 4,
    col: 19,
    message: /stage d field rows: must be <= 9007199254740991, got 1e\+300/,
  },
  {
    name: 'resources: 1e300',
    text: 'stages:\n  s:\n    uses: shell\n    with: { cmd: "true" }\n    resources: { gpu: 1e300 }\n',
    line: 5,
    col: 23,
    message: /resources\.gpu: must be/,
  },
  {
    name: 'output path ..',
    text: SHELL('{ cmd: "true", outputs: { a: ../../etc/x } }'),
    line: 4,
    col: 40,
    message: /field outputs\.a: "\.\.\/\.\.\/etc\/x" is not a relative path inside \$OUT/,
  },
  {
    name: 'output path absolute',
    text: SHELL('{ cmd: "true", outputs: { a: /etc/passwd } }'),
    line: 4,
    col: 40,
    message: /is not a relative path inside \$OUT/,
  },
  {
    name: 'output path with ./',
    text: SHELL('{ cmd: "true", outputs: { a: ./x } }'),
    line: 4,
    col: 40,
    message: /is not a relative path inside \$OUT/,
  },
  {
    name: 'output path empty segment',
    text: SHELL('{ cmd: "true", outputs: { a: "x//y" } }'),
    line: 4,
    col: 40,
    message: /is not a relative path inside \$OUT/,
  },
  {
    name: 'output path control char',
    text: SHELL('{ cmd: "true", outputs: { a: "x\\u0001" } }'),
    line: 4,
    col: 40,
    message: /is not a relative path inside \$OUT/,
  },
  {
    name: 'output path empty',
    text: SHELL('{ cmd: "true", outputs: { a: "" } }'),
    line: 4,
    col: 40,
    message: /is not a relative path inside \$OUT/,
  },
  {
    name: 'output name with a separator',
    text: SHELL('{ cmd: "true", outputs: { "a/b": x } }'),
    line: 4,
    col: 37,
    message: /stage s field outputs\.a\/b: unknown key 'a\/b'/,
  },
  {
    name: 'output name ..',
    text: SHELL('{ cmd: "true", outputs: { "..": x } }'),
    line: 4,
    col: 37,
    message: /unknown key '\.\.'/,
  },
  {
    name: 'bad reference',
    text: SHELL('{ cmd: "echo ${{ params. }}" }'),
    line: 4,
    col: 18,
    message: /bad reference \$\{\{ params\. \}\}: expected a name/,
  },
  {
    name: 'unterminated reference',
    text: SHELL('{ cmd: "echo ${{ params.x" }'),
    line: 4,
    col: 18,
    message: /unterminated reference/,
  },
  {
    name: 'reference to an undeclared param',
    text: SHELL('{ cmd: "echo ${{ params.nope }}" }'),
    line: 4,
    col: 18,
    message: /stage s field with\.cmd \(passed as \$PIPELINE_REF_0\): unknown param 'nope'/,
  },
  {
    name: 'unknown stage type',
    text: 'stages:\n  s: { uses: nope }\n',
    line: 2,
    col: 14,
    message: /unknown stage type 'nope'/,
  },
  {
    name: 'stage id with a space',
    text: 'stages:\n  "a b": { uses: shell, with: { cmd: "true" } }\n',
    line: 2,
    col: 3,
    message: /stage id 'a b' must match/,
  },
];

function writeCase(dir: string, c: Case): string {
  const file = join(dir, 'p.yaml');
  writeFileSync(file, c.text);
  return file;
}

test('malformed-input corpus: each file refused with file:line:col and a message, in well under a second', () => {
  for (const c of CASES) {
    const dir = mkdtempSync(join(tmpdir(), 'corpus-'));
    const file = writeCase(dir, c);
    const started = Date.now();
    assert.throws(
      () => loadPipeline({ file, stageTypes: allStageTypes }),
      (e: unknown) => {
        assert.ok(e instanceof PipelineError, `${c.name}: not a PipelineError: ${(e as Error)?.stack}`);
        const text = e.format();
        assert.match(text, new RegExp(`p\\.yaml:${c.line}:${c.col}: `), `${c.name}: ${text.slice(0, 300)}`);
        assert.match(text, c.message, `${c.name}: ${text.slice(0, 300)}`);
        return true;
      },
      c.name,
    );
    assert.ok(Date.now() - started < 5000, `${c.name} took ${Date.now() - started} ms`);
  }
});

test('malformed-input corpus through the CLI: exit 2, the position, no stack trace', async () => {
  const picked = [
    'billion laughs',
    'unknown tag',
    'invalid UTF-8 byte',
    'nesting 100 deep',
    '300x300x300 matrix',
    'rows: 1e300',
    'output path ..',
    '__proto__ key',
  ];
  const runs = picked.map(async (name) => {
    const c = CASES.find((x) => x.name === name)!;
    const p = makeProject('corpus-');
    writeCase(p.pipelines, c);
    const r = await cli(['validate', 'p'], p.dir);
    assert.equal(r.code, 2, `${name}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, new RegExp(`pipelines/p\\.yaml:${c.line}:${c.col}: `), name);
    assert.match(r.stderr, c.message, name);
    assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, name);
  });
  await Promise.all(runs);
});
