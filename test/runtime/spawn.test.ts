/**
 * Processes of stages: a stage starts them through its context (never by mutating the
 * runtime's state), and the runtime ends their whole process group on abort.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnGroup } from '../../src/runtime/launch.js';
import shell from '../../src/stages/shell.js';
import { runStageDirect } from '../helpers/run-stage.js';

test('the shell stage starts its command through ctx.spawn', async () => {
  const asked: string[][] = [];
  const controller = new AbortController();
  const run = await runStageDirect(
    shell,
    { cmd: 'echo hi > $OUT/x', outputs: { x: 'x' } },
    {
      signal: controller.signal,
      spawn: (command, args, request) => {
        asked.push([command, ...args]);
        return spawnGroup(command, args, request, controller.signal, 1000);
      },
    },
  );
  assert.deepEqual(asked, [['bash', '-c', 'echo hi > $OUT/x']]);
  assert.equal(readFileSync(join(run.outDir, 'x'), 'utf8'), 'hi\n');
});

test('spawnGroup ends the whole process group when the signal aborts', async () => {
  const controller = new AbortController();
  // The grandchild outlives bash unless its whole group is ended.
  const child = spawnGroup(
    'bash',
    ['-c', 'sleep 30 & echo $!; wait'],
    { stdio: ['ignore', 'pipe', 'ignore'] },
    controller.signal,
    1000,
  );
  const grandchild = await new Promise<number>((resolve) =>
    child.stdout!.once('data', (d) => resolve(Number(String(d).trim()))),
  );
  const closed = new Promise((resolve) => child.on('close', resolve));
  controller.abort();
  await closed;
  for (let i = 0; i < 50 && isRunning(grandchild); i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(!isRunning(grandchild), 'the grandchild survived the abort');
});

/** A process that exists and is not a zombie (an ended process whose parent has not reaped it). */
function isRunning(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    return readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
}
