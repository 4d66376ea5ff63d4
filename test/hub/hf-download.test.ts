/**
 * The hf-download stage against a fake hub on 127.0.0.1 (test/hub/fake-hub.ts): listing
 * with pagination, redirects to a CDN, Range resume, dropped and stalled connections,
 * expiring CDN URLs, checksums, auth, 404s, retries, revision pinning.
 */
import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hfDownload from '../../src/stages/hf-download.js';
import { runStageDirect, type DirectRun } from '../helpers/run-stage.js';
import { bytesOf, type FakeFile, type FakeHub, newCommitSha, repoKey, sha256, startFakeHub } from './fake-hub.js';

const REPO = 'mech-interp-uam/llama-mlp8-outputs';
const FILES: Record<string, FakeFile> = {
  'data/train-00000-of-00002.parquet': { content: bytesOf(150_000, 1), lfs: true },
  'data/train-00001-of-00002.parquet': { content: bytesOf(90_000, 2), lfs: true },
  'README.md': { content: Buffer.from('# activations\n') },
  '.gitattributes': { content: Buffer.from('*.parquet filter=lfs diff=lfs merge=lfs -text\n') },
  'meta/config.json': { content: Buffer.from('{"d": 2048}\n') },
  'empty.txt': { content: Buffer.alloc(0) },
};
const BIG = 'data/train-00000-of-00002.parquet';

let hub: FakeHub;
const savedEnv = { HF_TOKEN: process.env.HF_TOKEN, HF_ENDPOINT: process.env.HF_ENDPOINT };

before(async () => {
  // The developer's own token or mirror must not leak into (or change) these tests.
  delete process.env.HF_TOKEN;
  delete process.env.HF_ENDPOINT;
  hub = await startFakeHub();
});
after(async () => {
  await hub.close();
  for (const [k, v] of Object.entries(savedEnv)) if (v !== undefined) process.env[k] = v;
});
beforeEach(() => {
  // Fresh repo and no faults for every test.
  hub.repos.clear();
  hub.requests.length = 0;
  Object.assign(hub.faults, {
    pageSize: 1000,
    cdnUsesPerUrl: Infinity,
    ignoreRange: false,
    errors: [],
    relativeLocation: false,
    noRevisionApi: false,
    onBodyRequest: undefined,
  });
  for (const key of ['drop', 'stall', 'corrupt', 'missingOnResolve', 'renamed'] as const) hub.faults[key].clear();
});

function addRepo(files = FILES, opts: { type?: 'dataset' | 'model'; token?: string; id?: string } = {}): string {
  const sha = newCommitSha();
  hub.repos.set(repoKey(opts.type ?? 'dataset', opts.id ?? REPO), {
    type: opts.type ?? 'dataset',
    refs: { main: sha },
    commits: { [sha]: files },
    token: opts.token,
  });
  return sha;
}

function download(params: Record<string, unknown> = {}, opts: Parameters<typeof runStageDirect>[2] = {}) {
  return runStageDirect(hfDownload, { repo: REPO, endpoint: hub.endpoint, timeout_s: 5, ...params }, opts);
}

function assertFilesMatch(run: DirectRun, expected: Record<string, FakeFile>): void {
  const files = run.outputs.files as Array<{ path: string; size: number; sha256: string }>;
  assert.deepEqual(
    files.map((f) => f.path),
    Object.keys(expected).sort(),
  );
  for (const f of files) {
    const content = expected[f.path].content;
    assert.equal(f.size, content.length, f.path);
    assert.equal(f.sha256, sha256(content), f.path);
    assert.ok(readFileSync(join(run.outDir, run.outputs.dir as string, f.path)).equals(content), f.path);
  }
}

const cdnRequests = () => hub.requests.filter((r) => r.url.startsWith('/cdn/'));
const resolveRequests = (path: string) =>
  hub.requests.filter((r) => r.url.includes('/resolve/') && r.url.endsWith(path));

describe('hf-download from the hub', () => {
  test('lists every page, follows the CDN redirect, verifies and outputs the pinned commit', async () => {
    const sha = addRepo();
    hub.faults.pageSize = 2; // 6 files + 2 directories -> 4 pages
    const run = await download();
    assert.equal(run.outputs.commit, sha);
    assert.equal(run.outputs.dir, 'repo');
    assertFilesMatch(run, FILES);
    assert.equal(hub.requests.filter((r) => r.url.includes('/tree/')).length, 4);
    assert.equal(cdnRequests().length, 2, 'the two LFS files come from the CDN');
    for (const r of hub.requests.filter((r) => r.url.includes('/resolve/'))) {
      assert.ok(r.url.includes(`/resolve/${sha}/`), `requested at the pinned sha: ${r.url}`);
    }
    const last = run.progress.at(-1)!;
    assert.equal(last.unit, 'MB');
    assert.equal(last.fraction, 1);
    assert.match(last.message!, /^6\/6 files/);
  });

  test('include and exclude globs select the files', async () => {
    addRepo();
    const run = await download({ include: ['*.parquet', 'meta/**'], exclude: ['**/train-00001*'] });
    const paths = (run.outputs.files as Array<{ path: string }>).map((f) => f.path);
    assert.deepEqual(paths, [BIG, 'meta/config.json']);
    await assert.rejects(download({ include: ['*.arrow'] }), /no file of dataset .* matches include \["\*\.arrow"\]/);
  });

  test('a branch moving mid-download does not mix versions: everything comes from the pinned sha', async () => {
    const oldSha = addRepo();
    const repo = hub.repos.get(repoKey('dataset', REPO))!;
    const newSha = newCommitSha();
    const moved: Record<string, FakeFile> = {};
    for (const [p, f] of Object.entries(FILES))
      moved[p] = { ...f, content: Buffer.concat([f.content, Buffer.from('v2')]) };
    hub.faults.onBodyRequest = () => {
      repo.commits[newSha] = moved;
      repo.refs.main = newSha;
    };
    const run = await download({ revision: 'main', concurrency: 1 });
    assert.equal(run.outputs.commit, oldSha);
    assertFilesMatch(run, FILES);
    assert.equal(repo.refs.main, newSha, 'the branch did move during the download');
  });

  test('pins through X-Repo-Commit when the hub has no revision API', async () => {
    const sha = addRepo();
    hub.faults.noRevisionApi = true;
    const run = await download();
    assert.equal(run.outputs.commit, sha);
    assert.ok(hub.requests.some((r) => r.method === 'HEAD' && r.url.includes('/resolve/main/')));
    assertFilesMatch(run, FILES);
  });

  test('a renamed repository: API calls and resolves follow the 307 to the new name', async () => {
    const sha = addRepo();
    hub.faults.renamed.set(repoKey('dataset', 'old-owner/old-name'), repoKey('dataset', REPO));
    const run = await download({ repo: 'old-owner/old-name' });
    assert.equal(run.outputs.commit, sha);
    assertFilesMatch(run, FILES);
  });

  test('a connection dropped mid-body resumes with Range from where it stopped', async () => {
    addRepo();
    hub.faults.drop.set(BIG, { bytes: 40_000, times: 1 });
    const run = await download({ include: [BIG] });
    assertFilesMatch(run, { [BIG]: FILES[BIG] });
    const ranges = cdnRequests().map((r) => r.headers.range);
    assert.deepEqual(ranges, [undefined, 'bytes=40000-']);
    assert.ok(
      run.logs.some((l) => /retry 1\/5/.test(l)),
      run.logs.join('\n'),
    );
  });

  test('an expired CDN URL on resume is resolved again from the hub', async () => {
    addRepo();
    hub.faults.cdnUsesPerUrl = 1;
    hub.faults.drop.set(BIG, { bytes: 30_000, times: 1 });
    const run = await download({ include: [BIG] });
    assertFilesMatch(run, { [BIG]: FILES[BIG] });
    assert.equal(resolveRequests(BIG).length, 2, 'resolved twice');
    const cdn = cdnRequests();
    assert.equal(cdn.length, 3, 'first URL, its expired retry, the fresh URL');
    assert.equal(cdn[1].url.split('?')[0], cdn[0].url.split('?')[0], 'retried the old URL first');
    assert.equal(cdn[2].headers.range, 'bytes=30000-');
    assert.ok(run.logs.some((l) => /resolving again/.test(l)));
  });

  test('a server answering 200 to a Range request restarts the file from byte 0', async () => {
    addRepo();
    hub.faults.ignoreRange = true;
    hub.faults.drop.set(BIG, { bytes: 50_000, times: 1 });
    const run = await download({ include: [BIG] });
    assertFilesMatch(run, { [BIG]: FILES[BIG] });
    assert.ok(run.logs.some((l) => /ignored Range/.test(l)));
  });

  test('a relative Location is followed; a small file is served directly by the hub', async () => {
    addRepo();
    hub.faults.relativeLocation = true;
    const run = await download();
    assertFilesMatch(run, FILES);
    assert.ok(cdnRequests().every((r) => r.server === 'hub'));
    assert.equal(resolveRequests('README.md').length, 1);
    assert.equal(cdnRequests().length, 2, 'only the two LFS files go to the CDN');
  });

  test('a wrong sha256 is an error and the bad file is not kept', async () => {
    const sha = addRepo();
    hub.faults.corrupt.add(BIG);
    const workDir = mkdtempSync(join(tmpdir(), 'hfdl-work-'));
    await assert.rejects(download({}, { workDir }), (err: Error) => {
      assert.match(err.message, new RegExp(`${BIG.replace(/\./g, '\\.')} .* failed verification: sha256 mismatch`));
      assert.match(err.message, /deleted/);
      return true;
    });
    assert.equal(existsSync(join(workDir, 'hub', sha, BIG)), false, 'partial deleted');
  });

  test('a non-LFS file is checked against its git blob sha1', async () => {
    addRepo();
    hub.faults.corrupt.add('meta/config.json');
    await assert.rejects(download({ include: ['meta/**'] }), /meta\/config\.json .* git blob sha1 mismatch/);
  });

  test('401 explains gating and HF_TOKEN; the token goes to the hub only, as Bearer, never logged', async () => {
    addRepo(FILES, { token: 'hf_secret123' });
    await assert.rejects(download(), /gated or private.*accept the terms.*HF_TOKEN=.*No HF_TOKEN is set/s);
    process.env.HF_TOKEN = 'hf_secret123';
    try {
      hub.requests.length = 0;
      const run = await download();
      assertFilesMatch(run, FILES);
      const hubReqs = hub.requests.filter((r) => r.server === 'hub');
      assert.ok(hubReqs.every((r) => r.headers.authorization === 'Bearer hf_secret123'));
      assert.ok(
        cdnRequests().every((r) => r.headers.authorization === undefined),
        'no token to the CDN',
      );
      assert.ok(!JSON.stringify([run.logs, run.progress, run.outputs]).includes('hf_secret123'));
      process.env.HF_TOKEN = 'hf_wrong';
      await assert.rejects(download(), /gated or private.*HF_TOKEN that was sent was refused/s);
    } finally {
      delete process.env.HF_TOKEN;
    }
  });

  test('404s say whether the repo, the revision or the file is missing', async () => {
    addRepo();
    await assert.rejects(download({ repo: 'someone/nothing' }), /dataset someone\/nothing not found .*RepoNotFound/);
    await assert.rejects(download({ revision: 'v9' }), /revision "v9" not found in dataset .*RevisionNotFound/);
    hub.faults.missingOnResolve.add('README.md');
    await assert.rejects(download(), /file "README\.md" not found in dataset .*EntryNotFound/);
    hub.faults.missingOnResolve.clear();
    hub.faults.errors.push({ match: /\/tree\//, times: 1, status: 404 }); // no X-Error-Code: from context
    await assert.rejects(download(), /or its revision ".*" not found .*HTTP 404/);
  });

  test('5xx or a reset connection once, then OK: retried with backoff; too many: a clear error', async () => {
    addRepo();
    hub.faults.errors.push({ match: /\/tree\//, times: 1, status: 500 });
    hub.faults.errors.push({ match: /^\/cdn\//, times: 1, status: 503 });
    hub.faults.errors.push({ match: /\/revision\//, times: 1, status: 0 });
    const run = await download();
    assertFilesMatch(run, FILES);
    assert.equal(run.logs.filter((l) => /HTTP 50[03]/.test(l)).length, 2, run.logs.join('\n'));
    assert.equal(run.logs.filter((l) => /connection failed requesting .*\/revision\/main/.test(l)).length, 1);
    hub.faults.errors.push({ match: /\/revision\//, times: 10, status: 502 });
    await assert.rejects(download({ max_retries: 1 }), /giving up after 2 attempts.*HTTP 502/);
  });

  test('a stalled body times out and the retry resumes', async () => {
    addRepo();
    hub.faults.stall.set(BIG, { bytes: 20_000, times: 1 });
    const run = await download({ include: [BIG], timeout_s: 0.3 });
    assertFilesMatch(run, { [BIG]: FILES[BIG] });
    assert.ok(
      run.logs.some((l) => /timeout: no data for 0\.3 s/.test(l)),
      run.logs.join('\n'),
    );
    assert.equal(cdnRequests().at(-1)!.headers.range, 'bytes=20000-');
  });

  test('an aborted run leaves its partial in workDir and the next run continues it', async () => {
    const sha = addRepo();
    const workDir = mkdtempSync(join(tmpdir(), 'hfdl-work-'));
    const controller = new AbortController();
    hub.faults.stall.set(BIG, { bytes: 64_000, times: 1, onStall: () => controller.abort() });
    await assert.rejects(download({ include: [BIG] }, { workDir, signal: controller.signal }), { name: 'AbortError' });
    assert.equal(statSync(join(workDir, 'hub', sha, BIG)).size, 64_000);

    hub.requests.length = 0;
    const run = await download({ include: [BIG] }, { workDir });
    assertFilesMatch(run, { [BIG]: FILES[BIG] });
    assert.deepEqual(
      cdnRequests().map((r) => r.headers.range),
      ['bytes=64000-'],
    );
    assert.ok(run.logs.some((l) => /resuming from byte 64000/.test(l)));

    // Crashed after the download but before the runtime committed: nothing is fetched again.
    hub.requests.length = 0;
    const again = await download({ include: [BIG] }, { workDir });
    assertFilesMatch(again, { [BIG]: FILES[BIG] });
    assert.equal(cdnRequests().length + resolveRequests(BIG).length, 0);
  });

  test('repo_type model uses the model URLs; HF_ENDPOINT is read when no endpoint param', async () => {
    const sha = addRepo(
      { 'model.safetensors': { content: bytesOf(5000, 3), lfs: true } },
      { type: 'model', id: 'org/m' },
    );
    process.env.HF_ENDPOINT = hub.endpoint;
    try {
      const run = await runStageDirect(hfDownload, { repo: 'org/m', repo_type: 'model' });
      assert.equal(run.outputs.commit, sha);
      assert.ok(hub.requests.some((r) => r.url.startsWith('/api/models/org/m/tree/')));
      assert.ok(hub.requests.some((r) => r.url.startsWith(`/org/m/resolve/${sha}/model.safetensors`)));
    } finally {
      delete process.env.HF_ENDPOINT;
    }
  });
});
