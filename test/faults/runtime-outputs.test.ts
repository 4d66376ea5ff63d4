/**
 * Output-declaration violations: a stage's outputs must be regular files and folders. Links
 * inside the stage's own folders become copies; links elsewhere, dangling links, FIFOs and
 * sockets are refused with a clear error (and never opened: a FIFO cannot hang the runner);
 * a file added to a committed folder output is detected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, makeProject, showJson } from '../runtime/helpers.js';

const shell = (id: string, cmd: string, out: string) => `  ${id}:
    uses: shell
    with:
      cmd: ${JSON.stringify(cmd)}
      outputs: { o: ${JSON.stringify(out)} }
`;

const BAD = `stages:
${shell('abs_link', 'ln -s /etc/passwd $OUT/o.txt', 'o.txt')}
${shell('dangling', 'mkdir $OUT/d && echo a > $OUT/d/a && ln -s ../gone $OUT/d/b', 'd/')}
${shell('outside_work', 'echo x > $PIPELINE_DIR/elsewhere && ln -s $PIPELINE_DIR/elsewhere $OUT/o.txt', 'o.txt')}
${shell('fifo', 'mkfifo $OUT/o.txt', 'o.txt')}
${shell('fifo_in_dir', 'mkdir $OUT/d && echo a > $OUT/d/a && mkfifo $OUT/d/p', 'd/')}
${shell('socket', "python3 -c \"import socket,os; s=socket.socket(socket.AF_UNIX); s.bind(os.environ['OUT']+'/o.txt')\"", 'o.txt')}
`;

test('links outside the stage, dangling links, FIFOs and sockets are refused, each naming the path', {
  timeout: 120_000,
}, async () => {
  const p = makeProject('faults-out-');
  p.write('pipelines/bad.yaml', BAD);
  const r = await cli(['run', 'bad', '--progress', 'plain'], p.dir);
  const all = r.stdout + r.stderr;
  assert.equal(r.code, 1, all);
  assert.doesNotMatch(all, /internal error|\n\s+at /);
  assert.match(
    all,
    /abs_link: .*output o\.txt is a symbolic link to \/etc\/passwd, outside the stage's output and work folders/,
  );
  assert.match(all, /dangling: .*output d\/b is a dangling symbolic link/);
  assert.match(all, /outside_work: .*output o\.txt is a symbolic link to .*elsewhere, outside/);
  assert.match(all, /fifo: .*output o\.txt is a FIFO \(named pipe\): outputs must be regular files and folders/);
  assert.match(all, /fifo_in_dir: .*output d\/p is a FIFO/);
  assert.match(all, /socket: .*output o\.txt is a socket/);
  const cache = join(p.dir, 'artifacts/cache');
  assert.ok(!existsSync(cache) || readdirSync(cache).length === 0, 'nothing was committed');
});

test("links to files in the stage's own output or work folder are committed as copies", {
  timeout: 120_000,
}, async () => {
  const p = makeProject('faults-out-');
  p.write(
    'pipelines/ok.yaml',
    `stages:
${shell('links', 'mkdir $OUT/d && echo in-out > $OUT/d/a && ln -s a $OUT/d/b && echo in-work > $WORK/w && ln -s $WORK/w $OUT/d/c', 'd/')}
`,
  );
  const r = await cli(['run', 'ok'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  const d = (await showJson(['ok', 'links'], p.dir)).o as string;
  for (const [name, text] of [
    ['a', 'in-out\n'],
    ['b', 'in-out\n'],
    ['c', 'in-work\n'],
  ]) {
    assert.ok(lstatSync(join(d, name)).isFile(), `${name} is a regular file`);
    assert.equal(readFileSync(join(d, name), 'utf8'), text);
  }
  assert.ok(
    !existsSync(join(p.dir, 'artifacts/work')) || readdirSync(join(p.dir, 'artifacts/work')).length === 0,
    'the work folder is gone, the copy stays',
  );
});

test('a file added to a committed folder output is detected by status and re-run', { timeout: 120_000 }, async () => {
  const p = makeProject('faults-out-');
  p.write(
    'pipelines/dir.yaml',
    `stages:
${shell('folder', 'mkdir -p $OUT/d/sub && echo a > $OUT/d/a && echo x >> $PIPELINE_DIR/../counts/folder', 'd/')}
`,
  );
  assert.equal((await cli(['run', 'dir'], p.dir)).code, 0);
  const d = (await showJson(['dir', 'folder'], p.dir)).o as string;
  writeFileSync(join(d, 'sub', 'extra'), 'added');
  const status = await cli(['status', 'dir'], p.dir);
  assert.match(status.stdout, /stale\s+folder\s+cache entry corrupt \(d\/sub\/extra added\)/, status.stdout);
  const again = await cli(['run', 'dir'], p.dir);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(p.count('folder'), 2, 're-ran');
  assert.deepEqual(readdirSync(join((await showJson(['dir', 'folder'], p.dir)).o as string, 'sub')), []);
});
