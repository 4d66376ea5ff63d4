/**
 * The README's CLI reference and `pipeline VERB --help` say the same: every verb's usage line
 * is in the README, and every option a usage line shows is explained in that verb's help.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cli } from './helpers.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const VERBS = ['run', 'status', 'dag', 'validate', 'show', 'gc', 'stages', 'exec'];

/** The README's CLI reference block, one line per command (wrapped lines joined). */
function readmeUsages(): string[] {
  const readme = readFileSync(resolve(REPO, 'README.md'), 'utf8');
  const block = readme.split('## CLI reference')[1].split('```')[1];
  return block
    .replace(/\n\s+(?=\[)/g, ' ')
    .split('\n')
    .map((l) => l.replace(/\s+/g, ' ').trim())
    .filter(Boolean);
}

test('the README lists every verb with the usage its --help prints, and the help explains every option', async () => {
  const usages = readmeUsages();
  for (const verb of VERBS) {
    const r = await cli([verb, '--help'], REPO);
    assert.equal(r.code, 0, r.stderr);
    const [first, ...rest] = r.stdout.split('\n');
    const usage = first.replace(/^Usage: /, '');
    assert.ok(
      usages.some((l) => l.startsWith(usage)),
      `README's CLI reference lacks '${usage}':\n${usages.join('\n')}`,
    );
    const body = rest.join('\n');
    for (const flag of usage.match(/--[a-z-]+/g) ?? [])
      assert.match(body, new RegExp(`${flag}\\b`), `${verb}: ${flag}`);
  }
});
