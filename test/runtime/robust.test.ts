/**
 * Integration tests of the failure modes: a SIGKILLed run, SIGTERM, corrupted cache files,
 * two concurrent runs on one workspace, heavy stages in child processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  existsSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { alive, cli, count, makeProject, showJson, startCli, waitFor } from './helpers.js';

/**
 * `slow` writes half its output, records its shell pid, then sleeps unless the file
 * `pipelines/fast` exists (not part of the key), then finishes its output.
 */
const SLOW = `stages:
  slow:
    uses: shell
    with:
      cmd: |
        ${count('slow')}
        echo first-half > $OUT/out.txt
        echo $$ > $PIPELINE_DIR/slow.pid
        if [ ! -f $PIPELINE_DIR/fast ]; then sleep 30; fi
        echo second-half >> $OUT/out.txt
      outputs: { out: out.txt }
  other:
    uses: shell
    with:
      cmd: "${count('other')}; echo other > $OUT/o.txt"
      outputs: { o: o.txt }
`;

test('a SIGKILLed run is redone next time and nothing half-written is reused', async () => {
  const p = makeProject();
  p.write('pipelines/slow.yaml', SLOW);
  const run = startCli(['run', 'slow'], p.dir);
  const pidFile = join(p.pipelines, 'slow.pid');
  const cache = join(p.dir, 'artifacts/cache');
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'));
  await waitFor(() => existsSync(cache) && readdirSync(cache).length === 1);
  run.child.kill('SIGKILL');
  await run.done;
  // The runner's death ends its stage's process group (see test/faults/runtime-kill.test.ts).
  await waitFor(() => !alive(Number(readFileSync(pidFile, 'utf8'))), 10_000);
  const entriesAfterKill = readdirSync(join(p.dir, 'artifacts/cache')).length;
  assert.equal(entriesAfterKill, 1, 'only `other` was committed');
  assert.ok(readdirSync(join(p.dir, 'artifacts/locks')).length >= 1, 'the dead run left its entry lock');

  writeFileSync(join(p.pipelines, 'fast'), '');
  const r = await cli(['run', 'slow'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(p.count('slow'), 2, 'slow ran again');
  assert.equal(p.count('other'), 1, 'other was committed before the kill and reused');
  assert.equal(readFileSync((await showJson(['slow', 'slow'], p.dir)).out, 'utf8'), 'first-half\nsecond-half\n');
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/tmp')), [], "the dead run's temporary folder was removed");
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/locks')), [], 'the stale lock was broken and released');
});

test('SIGTERM stops the run cleanly: exit 143, children ended, no half entry', async () => {
  const p = makeProject();
  p.write('pipelines/slow.yaml', SLOW);
  const run = startCli(['run', 'slow', '--jobs', '1'], p.dir);
  const pidFile = join(p.pipelines, 'slow.pid');
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'));
  const shellPid = Number(readFileSync(pidFile, 'utf8'));
  run.child.kill('SIGTERM');
  const r = await run.done;
  assert.equal(r.code, 143, r.stderr);
  await waitFor(() => !alive(shellPid), 5000);
  const cache = join(p.dir, 'artifacts/cache');
  assert.ok(
    !existsSync(cache) ||
      readdirSync(cache).every((k) => !readFileSync(join(cache, k, 'manifest.json'), 'utf8').includes('"slow"')),
  );
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/tmp')), []);
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/locks')), []);
  const st = await cli(['status', 'slow'], p.dir);
  assert.match(st.stdout, /stale\s+slow\s+never run/);

  // Ctrl-C: the same, with exit code 130.
  rmSync(pidFile);
  const again = startCli(['run', 'slow', 'slow'], p.dir);
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'));
  again.child.kill('SIGINT');
  assert.equal((await again.done).code, 130);
  await waitFor(() => !alive(Number(readFileSync(pidFile, 'utf8'))), 5000);
  assert.deepEqual(readdirSync(join(p.dir, 'artifacts/tmp')), []);
});

test('a corrupted or deleted cache file is detected and the stage re-runs', async () => {
  const p = makeProject();
  p.write(
    'pipelines/c.yaml',
    `stages:
  s:
    uses: shell
    with: { cmd: "${count('s')}; echo content > $OUT/f.txt; mkdir $OUT/d; echo a > $OUT/d/a", outputs: { f: f.txt, d: d/ } }
  t:
    uses: shell
    with: { cmd: "${count('t')}; cat \${{ stages.s.outputs.f }} > $OUT/g.txt", outputs: { g: g.txt } }
`,
  );
  await cli(['run', 'c'], p.dir);
  const paths = await showJson(['c', 's'], p.dir);
  assert.ok(statSync(paths.d).isDirectory());
  // Same size, new content: the mtime differs from the manifest, so the file is re-hashed.
  writeFileSync(paths.f, 'CONTENT\n');
  let r = await cli(['status', 'c'], p.dir);
  assert.match(r.stdout, /stale\s+s\s+cache entry corrupt \(f\.txt content changed\)/);
  r = await cli(['run', 'c'], p.dir);
  assert.match(r.stderr, /cache entry \w+ is corrupt \(f\.txt content changed\): re-running/);
  assert.equal(p.count('s'), 2);
  assert.equal(p.count('t'), 1, 'the re-run restored identical outputs: t stays cached');
  assert.equal(readFileSync(paths.f, 'utf8'), 'content\n');

  // Same size and mtime restored: only --verify (full re-hash) notices.
  const st = statSync(paths.f);
  writeFileSync(paths.f, 'CONTENT\n');
  utimesSync(paths.f, st.atime, st.mtime);
  r = await cli(['run', 'c'], p.dir);
  assert.equal(p.count('s'), 2);
  r = await cli(['run', 'c', '--verify'], p.dir);
  assert.equal(p.count('s'), 3);

  // A deleted file inside a dir output.
  writeFileSync(join(paths.d, 'a'), '');
  r = await cli(['run', 'c'], p.dir);
  assert.match(r.stderr, /corrupt \(d\/a size 2 -> 0\)/);
  assert.equal(p.count('s'), 4);
});

test('two concurrent runs on one workspace compute each entry once and end consistent', async () => {
  const p = makeProject();
  p.write(
    'pipelines/par.yaml',
    `params: { tag: x }
stages:
  shared:
    uses: shell
    with: { cmd: "${count('shared')}; sleep 0.5; echo s > $OUT/s", outputs: { s: s } }
  a:
    uses: shell
    with: { cmd: "${count('a')}; cat \${{ stages.shared.outputs.s }} > $OUT/a", outputs: { a: a } }
  b:
    uses: shell
    with: { cmd: "${count('b')}; echo \${{ params.tag }} > $OUT/b", outputs: { b: b } }
`,
  );
  const [r1, r2] = await Promise.all([cli(['run', 'par', 'a'], p.dir), cli(['run', 'par', 'b', 'shared'], p.dir)]);
  assert.equal(r1.code, 0, r1.stderr);
  assert.equal(r2.code, 0, r2.stderr);
  assert.equal(p.count('shared'), 1, 'computed once; the other run waited and reused it');
  assert.equal(p.count('a'), 1);
  assert.equal(p.count('b'), 1);
  const lock = JSON.parse(readFileSync(join(p.pipelines, 'par.lock.json'), 'utf8'));
  assert.deepEqual(Object.keys(lock.instances), ['a', 'b', 'shared'], "both runs' entries are in the lock file");
  const [s1, s2] = await Promise.all([cli(['run', 'par'], p.dir), cli(['run', 'par'], p.dir)]);
  assert.match(s1.stderr, /0 ran, 3 cached/);
  assert.match(s2.stderr, /0 ran, 3 cached/);
});

test('heavy stages run in a child process; a crash there fails only that stage', async () => {
  const p = makeProject();
  p.write(
    'pipelines/h.yaml',
    `stages:
  heavy:
    uses: shell
    heavy: true
    resources: { gpu: 1 }
    with: { cmd: "${count('heavy')}; echo pid=$PPID cuda=[$CUDA_VISIBLE_DEVICES] > $OUT/h", outputs: { h: h } }
  crash:
    uses: shell
    heavy: true
    with: { cmd: "kill -9 $PPID; sleep 1", outputs: {} }
  light:
    uses: shell
    with: { cmd: "${count('light')}; echo ok > $OUT/l", outputs: { l: l } }
`,
  );
  const run = startCli(['run', 'h', '--resources', 'gpu=0'], p.dir);
  const r = await run.done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /FAILED crash: stage process killed by SIGKILL/);
  assert.match(r.stderr, /no GPU on this machine: stages that ask for one run on the CPU \(first: heavy\)/);
  assert.equal(p.count('light'), 1);
  const h = (await showJson(['h', 'heavy'], p.dir)).h;
  const [, pid, cuda] = /pid=(\d+) cuda=\[(.*)\]/.exec(readFileSync(h, 'utf8'))!;
  assert.notEqual(Number(pid), run.child.pid, 'ran under a child node process, not the runner');
  assert.equal(cuda, '', 'no GPU: CUDA_VISIBLE_DEVICES is empty (CPU)');
  // With two GPUs declared, the stage gets a device id.
  p.write(
    'pipelines/h.yaml',
    readFileSync(join(p.pipelines, 'h.yaml'), 'utf8').replace('echo pid', 'echo again; echo pid'),
  );
  const r2 = await cli(['run', 'h', 'heavy', '--resources', 'gpu=2'], p.dir);
  assert.equal(r2.code, 0, r2.stderr);
  const h2 = (await showJson(['h', 'heavy'], p.dir)).h;
  assert.match(readFileSync(h2, 'utf8'), /cuda=\[0\]/);
});

test('an unexpected error in one instance (a dangling link in its input folder) fails only it', async () => {
  const p = makeProject();
  p.write('pipelines/data/ok.txt', 'x\n');
  symlinkSync(join(p.pipelines, 'data/nowhere'), join(p.pipelines, 'data/dangling'));
  p.write(
    'pipelines/bad.yaml',
    `
stages:
  reads:
    uses: shell
    with:
      cmd: "${count('reads')}; ls $INPUT_0 > $OUT/l.txt"
      inputs: [data]
      outputs: { l: l.txt }
  other:
    uses: shell
    with:
      cmd: "${count('other')}; echo o > $OUT/o.txt"
      outputs: { o: o.txt }
`,
  );
  const r = await cli(['run', 'bad', '--progress', 'plain'], p.dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED reads: .*ENOENT/);
  assert.equal(p.count('other'), 1, 'the independent stage still ran');
  assert.equal(p.count('reads'), 0);
});
