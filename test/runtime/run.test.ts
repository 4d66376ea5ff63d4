/**
 * Integration tests through the real CLI with shell stages: what re-runs after a change,
 * early cutoff, list consumption, extends, --set, dry-run, status, show, failures, gc.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, count, makeProject, showJson } from './helpers.js';

/** a (param pa) -> b -> c; d independent; e reads a file input. */
const CHAIN = `name: chain
params: { pa: 1, pd: hello }
stages:
  a:
    uses: shell
    with:
      cmd: ${JSON.stringify(`${count('a')}; echo \${{ params.pa }} > $OUT/a.txt`)}
      outputs: { out: a.txt }
  b:
    uses: shell
    with:
      cmd: ${JSON.stringify(`${count('b')}; cat $A > $OUT/b.txt; echo b >> $OUT/b.txt`)}
      env: { A: \${{ stages.a.outputs.out }} }
      outputs: { out: b.txt }
  c:
    uses: shell
    with:
      cmd: ${JSON.stringify(`${count('c')}; cat \${{ stages.b.outputs.out }} > $OUT/c.txt`)}
      outputs: { out: c.txt }
  d:
    uses: shell
    with:
      cmd: ${JSON.stringify(`${count('d')}; echo \${{ params.pd }} > $OUT/d.txt`)}
      outputs: { out: d.txt }
  e:
    uses: shell
    with:
      cmd: ${JSON.stringify(`${count('e')}; wc -c < $INPUT_0 > $OUT/e.txt`)}
      inputs: [data.txt]
      outputs: { out: e.txt }
`;

function chainProject() {
  const p = makeProject();
  p.write('pipelines/chain.yaml', CHAIN);
  p.write('pipelines/data.txt', 'some data\n');
  return p;
}

const counts = (p: ReturnType<typeof makeProject>) =>
  Object.fromEntries(['a', 'b', 'c', 'd', 'e'].map((n) => [n, p.count(n)]));

test('a changed param re-runs exactly that stage and its dependents; inputs tracked; no-op runs nothing', async () => {
  const p = chainProject();
  let r = await cli(['run', 'chain.yaml'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(counts(p), { a: 1, b: 1, c: 1, d: 1, e: 1 });
  assert.ok(existsSync(join(p.dir, 'artifacts/cache')), 'artifacts/ next to pipelines/');
  assert.ok(existsSync(join(p.pipelines, 'chain.lock.json')));
  const lockBefore = readFileSync(join(p.pipelines, 'chain.lock.json'), 'utf8');

  r = await cli(['run', 'chain'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(counts(p), { a: 1, b: 1, c: 1, d: 1, e: 1 }, 'fully cached');
  assert.match(r.stderr, /0 ran, 5 cached/);
  assert.equal(
    readFileSync(join(p.pipelines, 'chain.lock.json'), 'utf8'),
    lockBefore,
    'no-op run leaves the lock file alone',
  );

  r = await cli(['status', 'chain'], p.dir);
  assert.match(r.stdout, /all 5 instances cached/);
  r = await cli(['status', 'chain', '--set', 'pa=2'], p.dir);
  assert.match(r.stdout, /stale\s+a\s+param pa 1 -> 2/);
  assert.match(r.stdout, /pending\s+b\s+upstream a not cached/);
  assert.match(r.stdout, /cached\s+d/);

  r = await cli(['run', 'pipelines/chain.yaml', '--set', 'pa=2'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(counts(p), { a: 2, b: 2, c: 2, d: 1, e: 1 });

  writeFileSync(join(p.pipelines, 'data.txt'), 'other data, longer\n');
  r = await cli(['status', 'chain', '--json', '--set', 'pa=2'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  const st = JSON.parse(r.stdout);
  assert.deepEqual(st.instances.find((i: { name: string }) => i.name === 'e').reasons, ['input data.txt changed']);
  r = await cli(['run', 'chain', '--set', 'pa=2'], p.dir);
  assert.deepEqual(counts(p), { a: 2, b: 2, c: 2, d: 1, e: 2 });

  // Back to the first value: those entries are still in the cache.
  r = await cli(['run', 'chain'], p.dir);
  assert.deepEqual(counts(p), { a: 2, b: 2, c: 2, d: 1, e: 2 });
  assert.match(r.stderr, /0 ran, 5 cached/);

  // show --json: one object of output paths; files hold what the commands wrote.
  assert.equal(readFileSync((await showJson(['chain', 'c'], p.dir)).out, 'utf8'), '1\nb\n');

  // --force re-runs a cached stage; its unchanged output keeps dependents cached.
  r = await cli(['run', 'chain', '--force', 'a'], p.dir);
  assert.deepEqual(counts(p), { a: 3, b: 2, c: 2, d: 1, e: 2 });

  // Targets: only what they need.
  r = await cli(['run', 'chain', 'd', '--set', 'pd=bye'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(counts(p), { a: 3, b: 2, c: 2, d: 2, e: 2 });

  // dry-run says what would run and runs nothing.
  r = await cli(['run', 'chain', '--set', 'pa=3', '--dry-run'], p.dir);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /would run\s+a: param pa 1 -> 3/);
  assert.match(r.stdout, /maybe run\s+c: upstream b not cached/);
  assert.deepEqual(counts(p), { a: 3, b: 2, c: 2, d: 2, e: 2 });

  // The no-op fast path answers unchanged runs, and any edit of the file falls through it.
  r = await cli(['run', 'chain'], p.dir);
  r = await cli(['run', 'chain'], p.dir);
  assert.match(r.stderr, /0 ran, 5 cached in .* \(nothing changed since the last run\)/);
  writeFileSync(join(p.pipelines, 'chain.yaml'), CHAIN.replace('pa: 1,', 'pa: 5,'));
  r = await cli(['run', 'chain'], p.dir);
  assert.deepEqual(counts(p), { a: 4, b: 3, c: 3, d: 2, e: 2 });
  rmSync(join(p.pipelines, 'chain.lock.json'));
  r = await cli(['run', 'chain'], p.dir);
  assert.doesNotMatch(r.stderr, /nothing changed/);
  assert.ok(existsSync(join(p.pipelines, 'chain.lock.json')), 'a deleted lock file is written again');
});

test('early cutoff: an upstream that re-runs with identical output leaves dependents cached', async () => {
  const p = makeProject();
  p.write(
    'pipelines/cut.yaml',
    `params: { comment: one }
stages:
  up:
    uses: shell
    with:
      cmd: "${count('up')}; echo same > $OUT/x.txt  # \${{ params.comment }}"
      outputs: { x: x.txt }
  down:
    uses: shell
    with:
      cmd: "${count('down')}; cp \${{ stages.up.outputs.x }} $OUT/y.txt"
      outputs: { y: y.txt }
`,
  );
  await cli(['run', 'cut'], p.dir);
  const r = await cli(['run', 'cut', '--set', 'comment=two'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(p.count('up'), 2);
  assert.equal(p.count('down'), 1);
  assert.match(r.stderr, /cached down/);
});

test('matrix: instances named stably, consumed as a list, one picked by a filter; extends overrides', async () => {
  const p = makeProject();
  p.write(
    'pipelines/base.yaml',
    `name: base
params: { sizes: [1, 2], lr: 0.0001 }
stages:
  m:
    uses: shell
    matrix: { n: \${{ params.sizes }}, lr: [\${{ params.lr }}] }
    with:
      cmd: "${count('m')}; echo \${{ matrix.n }} > $OUT/n.txt"
      outputs: { n: n.txt }
  total:
    uses: shell
    with:
      cmd: "for f in $(echo '\${{ stages.m.outputs.n }}' | tr -d '[]\\"' | tr ',' ' '); do cat $f; done | awk '{ t += $1 } END { print t }' > $OUT/t.txt"
      outputs: { t: t.txt }
  pick:
    uses: shell
    with:
      cmd: "cp \${{ stages.m[n=2,lr=1e-4].outputs.n }} $OUT/p.txt"
      outputs: { p: p.txt }
`,
  );
  p.write(
    'pipelines/demo.yaml',
    `extends: base.yaml
name: demo
params: { sizes: [2, 3, 4] }
stages:
  pick: null
`,
  );
  let r = await cli(['run', 'base'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(Object.keys(await showJson(['base', 'm'], p.dir)), ['m[n=1,lr=1e-4]', 'm[n=2,lr=1e-4]']);
  assert.equal(readFileSync((await showJson(['base', 'total'], p.dir)).t, 'utf8').trim(), '3');
  assert.equal(readFileSync((await showJson(['base', 'pick'], p.dir)).p, 'utf8').trim(), '2');

  r = await cli(['run', 'demo'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(p.count('m'), 4, 'sizes 3 and 4 are new; size 2 is shared with base through the cache');
  assert.equal(readFileSync((await showJson(['demo', 'total'], p.dir)).t, 'utf8').trim(), '9');
  r = await cli(['show', 'demo', 'pick'], p.dir);
  assert.equal(r.code, 2, 'pick was removed by demo');
  assert.ok(existsSync(join(p.pipelines, 'demo.lock.json')));

  r = await cli(['dag', 'demo', '--format', 'dot'], p.dir);
  assert.match(r.stdout, /"m" -> "total";/);
  r = await cli(['dag', 'base', '--format', 'mermaid'], p.dir);
  assert.match(r.stdout, /m --> pick/);
});

test('a failing stage: independent stages finish, dependents are skipped, exit 1 names the log', async () => {
  const p = makeProject();
  p.write(
    'pipelines/fail.yaml',
    `stages:
  bad:
    uses: shell
    with: { cmd: "echo about to fail; exit 3", outputs: { x: x.txt } }
  after:
    uses: shell
    with: { cmd: "${count('after')}; cat \${{ stages.bad.outputs.x }}", outputs: {} }
  slow:
    uses: shell
    with: { cmd: "sleep 0.3; ${count('slow')}; echo ok > $OUT/ok", outputs: { ok: ok } }
  missing:
    uses: shell
    with: { cmd: "true", outputs: { never: never.txt } }
`,
  );
  const r = await cli(['run', 'fail', '--jobs', '4'], p.dir);
  assert.equal(r.code, 1);
  assert.equal(p.count('slow'), 1);
  assert.equal(p.count('after'), 0);
  const log = join(p.dir, 'artifacts/logs/fail/bad.log');
  assert.match(r.stderr, /FAILED bad: command exited with code 3/);
  assert.ok(r.stderr.includes(`log: ${log}`), r.stderr);
  assert.match(readFileSync(log, 'utf8'), /about to fail/);
  assert.match(r.stderr, /FAILED missing: the command did not create output 'never'/);
  assert.match(r.stderr, /skipped after: upstream bad failed/);
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/tmp')), [], 'failed runs leave no temporary folders');
});

test('bad input: exit 2 with a position, nothing runs; --set typing; unknown file', async () => {
  const p = makeProject();
  p.write(
    'pipelines/ok.yaml',
    `params: { n: 2 }\nstages:\n  s:\n    uses: shell\n` +
      `    with: { cmd: "${count('s')}; echo \${{ params.n }} > $OUT/n", outputs: { n: n } }\n`,
  );
  let r = await cli(['run', 'ok', '--set', 'n=two'], p.dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--set n=two: expected a number/);
  r = await cli(['run', 'ok', '--set', 'm=1'], p.dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown param 'm'/);
  r = await cli(['run', 'ok', '--set', 'n=3'], p.dir);
  assert.equal(r.code, 0);
  assert.equal(readFileSync((await showJson(['ok', 's', '--set', 'n=3'], p.dir)).n, 'utf8'), '3\n');
  p.write('pipelines/bad.yaml', 'stages:\n  s:\n    uses: shell\n    with: { cmd: 3, outptus: {} }\n');
  r = await cli(['validate', 'bad'], p.dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pipelines\/bad\.yaml:4:18: stage s field cmd: must be string/);
  assert.match(r.stderr, /pipelines\/bad\.yaml:4:21: stage s field outptus: unknown key 'outptus'/);
  r = await cli(['run', 'nope.yaml'], p.dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /pipeline file nope\.yaml not found/);
  r = await cli(['run', 'ok', '--jobs', 'x'], p.dir);
  assert.equal(r.code, 2);
  r = await cli(['run', '--help'], p.dir);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /Exit codes/);
  assert.equal(p.count('s'), 1);
});

test('gc removes entries no lock file references', async () => {
  const p = chainProject();
  await cli(['run', 'chain', 'd', '--set', 'pd=one'], p.dir);
  await cli(['run', 'chain', 'd', '--set', 'pd=two'], p.dir);
  const entries = () => readdirSync(join(p.dir, 'artifacts/cache')).length;
  assert.equal(entries(), 2);
  const r = await cli(['gc'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /removed 1 cache entries/);
  assert.equal(entries(), 1);
  const again = await cli(['run', 'chain', 'd', '--set', 'pd=two'], p.dir);
  assert.match(again.stderr, /cached d/);
});
