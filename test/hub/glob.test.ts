/** Glob selection of repo paths (src/data/hub/glob.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGlob, compileSelection } from '../../src/data/hub/glob.js';

const PATHS = [
  'README.md',
  '.gitattributes',
  'data/train-00000-of-00006.parquet',
  'data/train-00001-of-00006.parquet',
  'data/sub/extra.parquet',
  'other/x.json',
  'top.parquet',
];

function select(pattern: string): string[] {
  const m = compileGlob(pattern);
  return PATHS.filter((p) => m(p));
}

test('a pattern without "/" matches base names anywhere', () => {
  assert.deepEqual(select('*.parquet'), [
    'data/train-00000-of-00006.parquet',
    'data/train-00001-of-00006.parquet',
    'data/sub/extra.parquet',
    'top.parquet',
  ]);
  assert.deepEqual(select('README.md'), ['README.md']);
  assert.deepEqual(select('.git*'), ['.gitattributes']);
});

test('"**" spans segments, "*" and "?" stay inside one', () => {
  assert.deepEqual(select('**'), PATHS);
  assert.deepEqual(
    select('data/**'),
    PATHS.filter((p) => p.startsWith('data/')),
  );
  assert.deepEqual(select('data/*.parquet'), [
    'data/train-00000-of-00006.parquet',
    'data/train-00001-of-00006.parquet',
  ]);
  assert.deepEqual(select('**/extra.parquet'), ['data/sub/extra.parquet']);
  assert.deepEqual(select('data/**/extra.parquet'), ['data/sub/extra.parquet']);
  assert.deepEqual(select('**/top.parquet'), ['top.parquet'], '**/ matches zero segments');
  assert.deepEqual(select('data/train-0000?-of-00006.parquet').length, 2);
  assert.deepEqual(select('./other/*.json'), ['other/x.json']);
});

test('character classes and alternatives', () => {
  assert.deepEqual(select('data/train-0000[1-3]-*'), ['data/train-00001-of-00006.parquet']);
  assert.deepEqual(select('data/train-0000[!1]-*'), ['data/train-00000-of-00006.parquet']);
  assert.deepEqual(select('{README.md,other/**}'), ['README.md', 'other/x.json']);
  assert.equal(compileGlob('a.b')('axb'), false, '"." is literal');
  assert.equal(compileGlob('a+(b)')('a+(b)'), true, 'regex characters are literal');
});

test('include and exclude combine', () => {
  const m = compileSelection(['*.parquet'], ['data/sub/**', 'top.*']);
  assert.deepEqual(PATHS.filter(m), ['data/train-00000-of-00006.parquet', 'data/train-00001-of-00006.parquet']);
});

test('malformed patterns are clear errors', () => {
  assert.throws(() => compileGlob('data/a**'), /glob "data\/a\*\*": '\*\*' must be a whole path segment/);
  assert.throws(() => compileGlob('[abc'), /unclosed '\['/);
  assert.throws(() => compileGlob('{a,b'), /unclosed '\{'/);
  assert.throws(() => compileGlob(''), /empty glob/);
});
