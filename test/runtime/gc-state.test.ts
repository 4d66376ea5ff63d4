/**
 * `pipeline gc` covers every kind of state a run leaves (docs/artifacts.md), not only cache
 * entries and work folders: the logs, no-op snapshots, input-hash memo entries and lock-file
 * index entries of what it collects, and entry locks of dead runs. What still belongs to a
 * kept entry stays.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { cli as cliIn, makeProject } from './helpers.js';

/** A one-stage pipeline reading one input file (inputs are digested through the memo). */
const pipeline = (name: string) => `name: ${name}
stages:
  s:
    uses: shell
    with:
      cmd: cat $INPUT_0 > $OUT/s.txt
      inputs: [${name}.txt]
      outputs: { o: s.txt }
`;

test('gc removes the logs, no-op snapshots, memo and index entries of what it collects, and dead runs locks', async () => {
  const p = makeProject('gc-state-');
  const art = join(p.dir, 'artifacts');
  // A private $TMPDIR: the YAML parse cache under it is this test's alone.
  const tmp = join(p.dir, 'tmp');
  mkdirSync(tmp);
  const parseCache = join(tmp, `pipeline-yaml-${process.getuid?.() ?? 'u'}`);
  const cli = (args: string[], cwd: string) => cliIn(args, cwd, { TMPDIR: tmp });
  for (const name of ['kept', 'gone']) {
    p.write(`pipelines/${name}.yaml`, pipeline(name));
    const input = p.write(`pipelines/${name}.txt`, `${name}\n`);
    // Older than the racy window, so the memo remembers it and the run leaves a no-op snapshot.
    const past = new Date(Date.now() - 60_000);
    utimesSync(input, past, past);
    const r = await cli(['run', name], p.dir);
    assert.equal(r.code, 0, r.stderr);
  }
  // A lock left by a dead run: this pid with another start time is a recycled pid, so dead.
  const deadLock = join(art, 'locks', `${'0'.repeat(64)}.lock`);
  writeFileSync(deadLock, JSON.stringify({ pid: process.pid, host: hostname(), start: 1 }));

  const snapshots = () =>
    readdirSync(join(art, 'noop')).map((f) => JSON.parse(readFileSync(join(art, 'noop', f), 'utf8')).pipeline);
  const memo = () => Object.keys(JSON.parse(readFileSync(join(art, 'filehash.json'), 'utf8')));
  const index = () => JSON.parse(readFileSync(join(art, 'locks-index.json'), 'utf8')) as string[];
  const gone = join(p.pipelines, 'gone.txt');
  assert.deepEqual(snapshots().sort(), ['gone', 'kept']);
  assert.ok(memo().includes(gone), 'the memo knows the input');
  assert.deepEqual(index().sort(), [join(p.pipelines, 'gone.lock.json'), join(p.pipelines, 'kept.lock.json')]);
  assert.ok(existsSync(join(art, 'logs', 'gone', 's.log')));
  assert.ok(existsSync(parseCache));

  // The pipeline goes away with its lock file and input: nothing references its entry now.
  for (const f of ['gone.yaml', 'gone.lock.json', 'gone.txt']) rmSync(join(p.pipelines, f));
  const dry = await cli(['gc', '--dry-run'], p.dir);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(
    dry.stdout,
    /would remove 1 cache entries and 0 work folders, 1 logs, 1 no-op snapshots, 1 memo entries, 1 index entries, 1 dead locks/,
  );
  assert.deepEqual(snapshots().sort(), ['gone', 'kept'], 'a dry run removes nothing');

  const r = await cli(['gc'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /removed 1 cache entries and 0 work folders, 1 logs, 1 no-op snapshots, 1 memo entries, 1 index entries, 1 dead locks/,
  );
  assert.deepEqual(snapshots(), ['kept']);
  assert.deepEqual(memo(), [join(p.pipelines, 'kept.txt')]);
  assert.deepEqual(index(), [join(p.pipelines, 'kept.lock.json')]);
  assert.ok(!existsSync(join(art, 'logs', 'gone')), 'the removed entry log and its folder are gone');
  assert.ok(existsSync(join(art, 'logs', 'kept', 's.log')), 'the kept entry log stays');
  assert.ok(!existsSync(deadLock));
  assert.ok(!existsSync(parseCache), 'the YAML parse cache is collected');
  // What stays still works: the kept pipeline is a no-op.
  const again = await cli(['run', 'kept'], p.dir);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /nothing changed since the last run/);
});
