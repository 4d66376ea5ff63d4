/** hf-download with a local folder or file:// source (src/data/hub/local.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import hfDownload from '../../src/stages/hf-download.js';
import { copyLocalSource } from '../../src/data/hub/local.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { bytesOf, sha256 } from './fake-hub.js';

/** A folder like a `huggingface-cli download --local-dir` result, with a symlinked file. */
function makeSource(): { root: string; contents: Record<string, Buffer> } {
  const root = mkdtempSync(join(tmpdir(), 'hfdl-local-'));
  const contents: Record<string, Buffer> = {
    'data/train-00000.parquet': bytesOf(30_000, 7),
    'data/train-00001.parquet': bytesOf(20_000, 8),
    'README.md': Buffer.from('# local copy\n'),
  };
  for (const [p, c] of Object.entries(contents)) {
    mkdirSync(join(root, p, '..'), { recursive: true });
    writeFileSync(join(root, p), c);
  }
  // Not data: must be skipped.
  mkdirSync(join(root, '.git'));
  writeFileSync(join(root, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  mkdirSync(join(root, '.cache', 'huggingface'), { recursive: true });
  writeFileSync(join(root, '.cache', 'huggingface', 'x.metadata'), 'meta');
  // A hub cache snapshot is made of symlinks to blobs: follow them.
  const blob = join(root, '..', `${root.split('/').pop()}-blob`);
  writeFileSync(blob, bytesOf(1000, 9));
  symlinkSync(blob, join(root, 'data', 'linked.parquet'));
  contents['data/linked.parquet'] = bytesOf(1000, 9);
  return { root, contents };
}

test('a local folder: filtered, copied under repo paths, sha256 recorded, commit null', async () => {
  const { root, contents } = makeSource();
  const run = await runStageDirect(hfDownload, { source: root, include: ['*.parquet', 'README.md'] });
  assert.equal(run.outputs.commit, null);
  assert.equal(run.outputs.dir, 'repo');
  const files = run.outputs.files as Array<{ path: string; size: number; sha256: string }>;
  assert.deepEqual(
    files.map((f) => f.path),
    Object.keys(contents).sort(),
  );
  for (const f of files) {
    assert.equal(f.sha256, sha256(contents[f.path]));
    assert.equal(f.size, contents[f.path].length);
    const placed = join(run.outDir, 'repo', f.path);
    assert.ok(readFileSync(placed).equals(contents[f.path]));
    assert.ok(!statSync(placed).isSymbolicLink());
  }
  assert.ok(
    run.logs.some((l) => /4 copied/.test(l)),
    run.logs.join('\n'),
  );
});

test('a file:// URL and a path relative to the pipeline folder; inputFiles names the folder', async () => {
  const { root } = makeSource();
  const viaUrl = await runStageDirect(hfDownload, { source: pathToFileURL(root).href, exclude: ['**/*.md'] });
  assert.equal((viaUrl.outputs.files as unknown[]).length, 3);
  const parent = join(root, '..');
  const name = root.split('/').pop()!;
  const viaRelative = await runStageDirect(
    hfDownload,
    { source: name, include: ['README.md'] },
    { pipelineDir: parent },
  );
  assert.deepEqual(viaRelative.outputs.files, [
    { path: 'README.md', size: 13, sha256: sha256(Buffer.from('# local copy\n')) },
  ]);
  assert.deepEqual(hfDownload.inputFiles!({ source: pathToFileURL(root).href } as any), [root]);
  assert.deepEqual(hfDownload.inputFiles!({ source: 'data/local' } as any), ['data/local']);
  assert.deepEqual(hfDownload.inputFiles!({ repo: 'a/b' } as any), []);
});

test('large files are reflinked or hard-linked rather than copied', async () => {
  const { root, contents } = makeSource();
  const dest = mkdtempSync(join(tmpdir(), 'hfdl-dest-'));
  const logs: string[] = [];
  const files = await copyLocalSource({
    source: root,
    baseDir: '/',
    include: ['data/**'],
    exclude: [],
    destDir: dest,
    linkThresholdBytes: 10_000, // the two 20-30 kB files count as large here
    signal: new AbortController().signal,
    log: (m) => logs.push(m),
    progress: () => {},
  });
  assert.equal(files.length, 3);
  const summary = logs.at(-1)!;
  assert.match(summary, /(2 reflinked|2 hard-linked), 1 copied|1 copied, 2 (reflinked|hard-linked)/);
  if (/hard-linked/.test(summary)) {
    const p = 'data/train-00000.parquet';
    assert.equal(statSync(join(dest, p)).ino, statSync(join(root, p)).ino);
  }
  for (const f of files) assert.ok(readFileSync(join(dest, f.path)).equals(contents[f.path]));
});

test('bad local sources are clear errors', async () => {
  await assert.rejects(
    runStageDirect(hfDownload, { source: '/nonexistent/hfdl-folder' }),
    /source "\/nonexistent\/hfdl-folder": \/nonexistent\/hfdl-folder does not exist/,
  );
  const { root } = makeSource();
  await assert.rejects(
    runStageDirect(hfDownload, { source: root, include: ['*.arrow'] }),
    /no file under .* matches include \["\*\.arrow"\]/,
  );
  await assert.rejects(runStageDirect(hfDownload, {}), /give `repo` .* or `source`/);
});
