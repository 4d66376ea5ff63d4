/**
 * The code of a stage type is in its cache key: editing the compiled module of a stage type
 * (in a copy of the program) makes its instances stale with "code of shell changed", and the
 * same code gives the same keys run after run. The runner's own code is not part of it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
import { count, makeProject, type CliResult } from './helpers.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** A copy of the compiled program whose files the test may edit. */
function programCopy(): string {
  const root = mkdtempSync(join(tmpdir(), 'code-key-'));
  cpSync(join(REPO, 'dist/src'), join(root, 'dist/src'), { recursive: true });
  cpSync(join(REPO, 'package.json'), join(root, 'package.json'));
  symlinkSync(join(REPO, 'node_modules'), join(root, 'node_modules'));
  return root;
}

function run(root: string, args: string[], cwd: string): Promise<CliResult> {
  const child = spawn(process.execPath, [join(root, 'dist/src/cli.js'), ...args], {
    cwd,
    env: { ...process.env, PIPELINE_ARTIFACTS: '' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((res) => child.on('close', (code, signal) => res({ code, signal, stdout, stderr })));
}

test('editing a stage type\'s code makes its results stale: "code of shell changed"', {
  timeout: 120_000,
}, async () => {
  const root = programCopy();
  const p = makeProject('code-key-');
  p.write(
    'pipelines/one.yaml',
    `stages:
  one:
    uses: shell
    with:
      cmd: "${count('one')}; echo one > $OUT/o.txt"
      outputs: { o: o.txt }
`,
  );
  assert.equal((await run(root, ['run', 'one'], p.dir)).code, 0);
  // The runner's code is not the stage's: editing it keeps the keys.
  appendFileSync(join(root, 'dist/src/runtime/format.js'), '\n// an edit of the runner\n');
  const same = await run(root, ['status', 'one'], p.dir);
  assert.match(same.stdout, /all 1 instances cached/, same.stdout);
  appendFileSync(join(root, 'dist/src/stages/shell.js'), '\n// an edit of the stage\n');
  const stale = await run(root, ['status', 'one'], p.dir);
  assert.match(stale.stdout, /stale\s+one\s+code of shell changed/, stale.stdout);
  const again = await run(root, ['run', 'one'], p.dir);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(p.count('one'), 2, 'the stage ran again with the new code');
});
