/**
 * `pipeline gc` in a loop while runs commit new entries (first runs, with no lock file yet):
 * every run ends with the right result, and everything it reported stays in the cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, makeProject, startCli, waitFor } from '../runtime/helpers.js';

/** A shell stage writing $OUT/<id>.txt, with the output `o` of stage `from` as $INPUT_0. */
const stage = (id: string, cmd: string, from?: string) => `  ${id}:
    uses: shell
    with:
      cmd: ${JSON.stringify(cmd)}
${from ? `      inputs: ["\${{ stages.${from}.outputs.o }}"]\n` : ''}      outputs: { o: ${id}.txt }
`;

/** A chain whose last output is a function of `n` through every upstream file. */
const CHAIN = `params: { n: 0 }
stages:
${stage('a', 'sleep 0.2; echo ${{ params.n }} > $OUT/a.txt')}\
${stage('b', 'sleep 0.2; cat $INPUT_0 > $OUT/b.txt; echo b >> $OUT/b.txt', 'a')}\
${stage('c', 'cat $INPUT_0 > $OUT/c.txt; echo c >> $OUT/c.txt', 'b')}`;

test('gc in a loop during runs never deletes what a run uses or reports', { timeout: 150_000 }, async () => {
  const p = makeProject('faults-gc-');
  p.write('pipelines/chain.yaml', CHAIN);
  let stop = false;
  let collections = 0;
  const gcLoop = (async () => {
    while (!stop) {
      const r = await startCli(['gc', 'chain'], p.dir).done;
      assert.equal(r.code, 0, r.stderr);
      collections++;
    }
  })();
  try {
    for (let n = 1; n <= 3; n++) {
      const r = await cli(['run', 'chain', '--set', `n=${n}`, '--jobs', '2'], p.dir);
      assert.equal(r.code, 0, `run n=${n}: ${r.stderr}`);
      // The run's last line: where its result is.
      const result = /^c\.o: (.*)$/m.exec(r.stderr)?.[1];
      assert.ok(result, r.stderr);
      assert.equal(readFileSync(result, 'utf8'), `${n}\nb\nc\n`, `run n=${n}: the result reported`);
    }
  } finally {
    stop = true;
    await gcLoop;
  }
  assert.ok(collections >= 2, `gc ran ${collections} times during the runs`);
  // The last run's entries are referenced by the lock file: a final gc keeps them all.
  assert.equal((await cli(['gc', 'chain'], p.dir)).code, 0);
  const status = await cli(['status', 'chain', '--set', 'n=3', '--verify'], p.dir);
  assert.match(status.stdout, /all 3 instances cached/, status.stdout);
});

/** Says it started (pipelines/b-started), then waits until the test writes pipelines/go. */
const START_AND_WAIT = 'touch $PIPELINE_DIR/b-started; while [ ! -f $PIPELINE_DIR/go ]; do sleep 0.1; done';

/** `a` is reused from an entry no lock file references any more; `b` reads it only once gc has run. */
const REUSE = `params: { n: 0, m: 0 }
stages:
${stage('a', 'echo ${{ params.n }} > $OUT/a.txt')}\
${stage('b', `echo \${{ params.m }} > /dev/null; ${START_AND_WAIT}; cat $INPUT_0 > $OUT/b.txt`, 'a')}`;

test('gc while a run uses a reused entry no lock file references keeps that entry', { timeout: 150_000 }, async () => {
  const p = makeProject('faults-gc-');
  p.write('pipelines/reuse.yaml', REUSE);
  p.write('pipelines/go', '');
  assert.equal((await cli(['run', 'reuse', '--set', 'n=1', '--set', 'm=1'], p.dir)).code, 0);
  // The lock file now references a for n=2: the entry of a for n=1 is garbage, still cached.
  assert.equal((await cli(['run', 'reuse', '--set', 'n=2', '--set', 'm=1'], p.dir)).code, 0);
  rmSync(join(p.pipelines, 'go'));
  rmSync(join(p.pipelines, 'b-started'));
  const run = startCli(['run', 'reuse', '--set', 'n=1', '--set', 'm=2'], p.dir);
  await waitFor(() => existsSync(join(p.pipelines, 'b-started')), 60_000);
  const gc = await cli(['gc', 'reuse'], p.dir);
  assert.equal(gc.code, 0, gc.stderr);
  writeFileSync(join(p.pipelines, 'go'), '');
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(/^b\.o: (.*)$/m.exec(r.stderr)![1], 'utf8'), '1\n');
});
