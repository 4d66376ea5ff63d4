/** docs/stages.md is generated from the stage types' schemas: it must match them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allStageTypes } from '../../src/stages/index.js';
import { describeStageTypes, typeText } from '../../src/runtime/describe.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

test('docs/stages.md is up to date (regenerate: pipeline stages --markdown > docs/stages.md)', () => {
  assert.equal(readFileSync(resolve(REPO, 'docs/stages.md'), 'utf8'), describeStageTypes(allStageTypes));
});

test('every param and output of every stage type is described', () => {
  for (const t of allStageTypes) {
    assert.ok(t.description.length > 10, `${t.name}: description`);
    for (const [name, o] of Object.entries(t.outputs)) assert.ok(o.description, `${t.name} output ${name}`);
  }
});

test('typeText renders unions, bounds and lists', () => {
  assert.equal(typeText({ type: 'integer', minimum: 1 }), 'integer >= 1');
  assert.equal(typeText({ anyOf: [{ const: 'a' }, { const: 'b' }] }), '"a" \\| "b"');
  assert.equal(typeText({ type: 'array', items: { type: 'number' } }), 'list of number');
});
