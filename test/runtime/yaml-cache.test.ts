/**
 * The parse cache under $TMPDIR gives exactly what a fresh parse gives: values JSON cannot
 * hold (.inf, .nan, -0) are not turned into null by a warm cache (dates cannot occur: only
 * JSON tags are accepted, see test/faults/inputs-yaml), so a pipeline's
 * keys do not depend on whether that cache is warm.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readYamlFile } from '../../src/runtime/yaml-source.js';

test('cold and warm parses of one file are equal, .inf/.nan/-0 included', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'yaml-cache-')), 'p.yaml');
  // A unique text, so that the cache is cold on the first read.
  writeFileSync(
    file,
    `# ${randomBytes(8).toString('hex')}\nparams:\n  big: .inf\n  small: -.inf\n  nan: .nan\n  zero: -0\n  plain: [1, x]\n`,
  );
  const cold = readYamlFile(file, 'p.yaml');
  const warm = readYamlFile(file, 'p.yaml');
  assert.deepStrictEqual(warm.data, cold.data);
  const params = (warm.data as { params: Record<string, unknown> }).params;
  assert.equal(params.big, Infinity);
  assert.ok(Number.isNaN(params.nan));
  assert.ok(Object.is(params.zero, -0));
});

test('a plain file is cached and read back equal', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'yaml-cache-')), 'p.yaml');
  writeFileSync(
    file,
    `# ${randomBytes(8).toString('hex')}\nstages:\n  a: { uses: shell, with: { cmd: "echo \${{ params.x }}" } }\n`,
  );
  const cold = readYamlFile(file, 'p.yaml');
  const warm = readYamlFile(file, 'p.yaml');
  assert.deepStrictEqual(warm.data, cold.data);
  assert.deepStrictEqual([...warm.positions], [...cold.positions]);
});
