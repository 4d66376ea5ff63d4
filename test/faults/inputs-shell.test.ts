/**
 * Injection through `${{ }}` in shell commands: params, matrix values and upstream paths that
 * hold shell syntax reach bash as data (environment variables), never as command text.
 * Each payload would create a file named `pwned-*` in the project if it ran.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cli, makeProject } from '../runtime/helpers.js';
import { rewriteShellReferences } from '../../src/runtime/shell-refs.js';

const REPO = resolve(import.meta.dirname, '../../..');

/** Payloads, each breaking out of a different quoting context if pasted. */
const PAYLOADS = [
  '$(touch "$PIPELINE_DIR/../pwned-subst")',
  '`touch "$PIPELINE_DIR/../pwned-backtick"`',
  'x; touch "$PIPELINE_DIR/../pwned-semicolon"',
  `x'; touch "$PIPELINE_DIR/../pwned-single"; echo '`,
  'x"; touch "$PIPELINE_DIR/../pwned-double"; echo "',
  'x\ntouch "$PIPELINE_DIR/../pwned-newline"',
];

function pwned(dir: string): string[] {
  return readdirSync(dir).filter((f) => f.startsWith('pwned'));
}

test('shell: params with shell syntax are data in every quoting context, never commands', async () => {
  const p = makeProject('inj-');
  const params = Object.fromEntries(PAYLOADS.map((v, i) => [`v${i}`, v]));
  const lines = PAYLOADS.map((_, i) =>
    [
      `printf '%s\\n' \${{ params.v${i} }} >> "$OUT/plain.txt"`,
      `printf '%s\\n' "\${{ params.v${i} }}" >> "$OUT/double.txt"`,
      `printf '%s\\n' '\${{ params.v${i} }}' >> "$OUT/single.txt"`,
      `printf '%s\\n' "$(printf '%s' '\${{ params.v${i} }}')" >> "$OUT/nested.txt"`,
    ].join('\n'),
  );
  p.write(
    'pipelines/inj.yaml',
    `params: ${JSON.stringify(params)}
stages:
  s:
    uses: shell
    with:
      cmd: ${JSON.stringify(`: > "$OUT/plain.txt"\n${lines.join('\n')}\n`)}
      outputs: { plain: plain.txt, double: double.txt, single: single.txt, nested: nested.txt }
`,
  );
  const r = await cli(['run', 'inj'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(pwned(p.dir), []);
  const out = (name: string) =>
    readFileSync(join(p.dir, 'artifacts/cache', readdirSync(join(p.dir, 'artifacts/cache'))[0], 'out', name), 'utf8');
  const exact = PAYLOADS.map((v) => `${v}\n`).join('');
  assert.equal(out('double.txt'), exact);
  assert.equal(out('single.txt'), exact);
  assert.equal(out('nested.txt'), exact);
  // Unquoted, a value is split into words (as bash does with any variable), but still not run.
  assert.equal(
    out('plain.txt'),
    PAYLOADS.map((v) =>
      v
        .split(/\s+/)
        .filter(Boolean)
        .map((w) => `${w}\n`)
        .join(''),
    ).join(''),
  );
});

test('shell: an upstream output path holding shell syntax (a hub file name) is data downstream', async () => {
  const p = makeProject('inj-');
  // A folder name that runs a command if pasted (the shell's working folder is pipelines/).
  const name = 'h$(touch pwned-path);`touch pwned-tick`';
  p.write(
    'pipelines/up.yaml',
    `stages:
  a:
    uses: shell
    with:
      cmd: mkdir -p "$OUT/$D" && echo hi > "$OUT/$D/x"
      env: { D: ${JSON.stringify(name)} }
      outputs: { d: ${JSON.stringify(`${name}/`)} }
  b:
    uses: shell
    with:
      cmd: |
        cat "\${{ stages.a.outputs.d }}/x" > "$OUT/x"
        echo "\${{ stages.a.outputs.d }}" > "$OUT/path"
      outputs: { x: x, path: path }
`,
  );
  const r = await cli(['run', 'up'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual([...pwned(p.dir), ...pwned(p.pipelines)], []);
  const show = JSON.parse((await cli(['show', 'up', 'b', '--json'], p.dir)).stdout);
  assert.equal(readFileSync(show.x, 'utf8'), 'hi\n');
  assert.match(readFileSync(show.path, 'utf8'), /\/h\$\(touch pwned-path\);`touch pwned-tick`\n$/);
});

test('shell: a value used in bash arithmetic must be a number (exit 2 at the command), not code', async () => {
  const p = makeProject('inj-');
  p.write(
    'pipelines/ar.yaml',
    `params: { n: "3" }
stages:
  s:
    uses: shell
    with:
      cmd: echo $(( \${{ params.n }} * 2 )) > "$OUT/n"
      outputs: { n: n }
`,
  );
  let r = await cli(['run', 'ar', '--set', 'n=a[$(touch "$PIPELINE_DIR/../pwned-arith")]'], p.dir);
  assert.equal(r.code, 2, r.stderr);
  assert.match(
    r.stderr,
    /pipelines\/ar\.yaml:6:12: stage s field env\.PIPELINE_NUM_0: must be a number \(the command uses this value in bash arithmetic\)/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(pwned(p.dir), []);
  r = await cli(['run', 'ar', '--set', 'n=21'], p.dir);
  assert.equal(r.code, 0, r.stderr);
});

test('shell: pipelines/examples/hello.yaml with a hostile greeting prints it and runs nothing', async () => {
  const p = makeProject('inj-');
  copyFileSync(join(REPO, 'pipelines/examples/hello.yaml'), join(p.pipelines, 'hello.yaml'));
  const greeting = `$(touch "$PIPELINE_DIR/../pwned-hello")'\`touch x\`"`;
  const r = await cli(['run', 'hello', '--set', `greeting=${greeting}`], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(pwned(p.dir), []);
  const show = await cli(['show', 'hello', 'words', '--json', '--set', `greeting=${greeting}`], p.dir);
  const words = readFileSync(JSON.parse(show.stdout).words, 'utf8');
  assert.equal(words, [1, 2, 3].map((i) => `${greeting} world ${i}\n`).join(''));
});

test('shell: references become variables chosen by quoting context', () => {
  const cases: Array<[string, string]> = [
    ['echo ${{ params.a }}', 'echo ${PIPELINE_REF_0}'],
    ['echo "x ${{ params.a }}"', 'echo "x ${PIPELINE_REF_0}"'],
    ["echo 'x ${{ params.a }}'", `echo 'x '"\${PIPELINE_REF_0}"''`],
    ["echo $'x ${{ params.a }}'", `echo $'x '"\${PIPELINE_REF_0}"$''`],
    [`echo "$(echo '\${{ params.a }}')"`, `echo "$(echo ''"\${PIPELINE_REF_0}"'')"`],
    ['echo $(( ${{ params.a }} + 1 ))', 'echo $(( ${PIPELINE_NUM_0} + 1 ))'],
    ['(( x = ${{ params.a }} ))', '(( x = ${PIPELINE_NUM_0} ))'],
    ["# don't\necho ${{ params.a }}", "# don't\necho ${PIPELINE_REF_0}"],
    ["echo \\'${{ params.a }}", "echo \\'${PIPELINE_REF_0}"],
  ];
  for (const [cmd, want] of cases) assert.equal(rewriteShellReferences(cmd)?.cmd, want, cmd);
  assert.deepEqual(rewriteShellReferences('a ${{ params.a }} b ${{ stages.s.outputs.o[0] }}')?.vars, {
    PIPELINE_REF_0: '${{ params.a }}',
    PIPELINE_REF_1: '${{ stages.s.outputs.o[0] }}',
  });
  assert.equal(rewriteShellReferences('echo hi'), null);
});
