/**
 * scripts/build-native.mjs never fails an install: without a compiler it says, in one line,
 * that training falls back to tfjs-wasm and which command enables the fast path, exits 0,
 * and leaves an existing build alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const addonPath = join(root, 'native', 'build', 'Release', 'sae_native.node');

test('without a C++ compiler the native build says so in one line and exits 0', () => {
  const before = existsSync(addonPath) ? statSync(addonPath).mtimeMs : null;
  const r = spawnSync(process.execPath, [join(root, 'scripts', 'build-native.mjs'), '--force'], {
    encoding: 'utf8',
    env: { ...process.env, CXX: join(root, 'no-such-compiler') },
  });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, 1, r.stdout);
  assert.match(lines[0], /no C\+\+ compiler: '.*no-such-compiler' does not run/);
  assert.match(lines[0], /training falls back to tfjs-wasm/);
  assert.ok(
    lines[0].includes('apt-get install libopenblas-dev libopenblas-openmp-dev && npm run build:native'),
    lines[0],
  );
  assert.equal(existsSync(addonPath) ? statSync(addonPath).mtimeMs : null, before, 'the existing build was touched');
});
