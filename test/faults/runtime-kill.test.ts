/**
 * A dead runner's stages are killed or adopted, never raced: a SIGKILLed runner takes its
 * stages' process groups with it (in-process and heavy stages alike), SIGHUP stops a run like
 * SIGINT, two Ctrl-C end a heavy stage's children at once, and the next run ends whatever a
 * dead run left running in a work folder before it reuses that folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { alive, cli, count, makeProject, startCli, waitFor } from '../runtime/helpers.js';

/** A stage that records its shell's pid and sleeps; `heavy` runs it in a child process. */
const sleeper = (heavy: boolean, trapSignals = false) => `stages:
  sleeper:
    uses: shell
    heavy: ${heavy}
    with:
      cmd: |
        ${trapSignals ? "trap '' TERM INT HUP" : ''}
        ${count('sleeper')}
        sleep 60 &
        echo $! > $PIPELINE_DIR/child.pid
        echo $$ > $PIPELINE_DIR/sleeper.pid
        wait
        echo done > $OUT/o.txt
      outputs: { o: o.txt }
`;

async function startedSleeper(p: ReturnType<typeof makeProject>, args: string[]) {
  const run = startCli(['run', 'sl', '--progress', 'plain', ...args], p.dir);
  const pidFile = join(p.pipelines, 'sleeper.pid');
  await waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'), 30_000);
  return {
    run,
    shell: Number(readFileSync(pidFile, 'utf8')),
    child: Number(readFileSync(join(p.pipelines, 'child.pid'), 'utf8')),
  };
}

for (const heavy of [false, true]) {
  test(`a SIGKILLed runner takes its ${heavy ? 'heavy' : 'in-process'} stage's processes with it`, {
    timeout: 120_000,
  }, async () => {
    const p = makeProject('faults-kill-');
    p.write('pipelines/sl.yaml', sleeper(heavy));
    const { run, shell, child } = await startedSleeper(p, []);
    run.child.kill('SIGKILL');
    await run.done;
    await waitFor(() => !alive(shell) && !alive(child), 10_000);
  });
}

test("SIGHUP stops a run like SIGINT: exit 129, the heavy stage's processes ended", { timeout: 120_000 }, async () => {
  const p = makeProject('faults-kill-');
  p.write('pipelines/sl.yaml', sleeper(true));
  const { run, shell, child } = await startedSleeper(p, []);
  run.child.kill('SIGHUP');
  const r = await run.done;
  assert.equal(r.code, 129, r.stderr);
  await waitFor(() => !alive(shell) && !alive(child), 10_000);
});

test('two Ctrl-C end a heavy stage that ignores signals, with its children, at once', {
  timeout: 120_000,
}, async () => {
  const p = makeProject('faults-kill-');
  p.write('pipelines/sl.yaml', sleeper(true, true));
  const { run, shell, child } = await startedSleeper(p, []);
  run.child.kill('SIGINT');
  await new Promise((r) => setTimeout(r, 300));
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  // Seen once in CI (2026-12-02, not reproduced in 30 runs, 24 alone and 6 under CPU load): the processes
  // outlived the 10 s. If it happens again, the failure says what they were doing.
  await waitFor(() => !alive(shell) && !alive(child), 10_000).catch(() => {
    assert.fail(`still alive 10 s after the second Ctrl-C:\n${describeProcesses([shell, child])}\n${r.stderr}`);
  });
});

/** pid, parent, group, state and command of each process (what `ps` shows), for a failure message. */
function describeProcesses(pids: number[]): string {
  return pids
    .map((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const [, comm, rest] = stat.match(/^\d+ \((.*)\) (.*)$/s)!;
        const [state, ppid, pgid] = rest.split(' ');
        return `pid ${pid} (${comm}) state ${state} ppid ${ppid} pgid ${pgid}`;
      } catch {
        return `pid ${pid}: gone`;
      }
    })
    .join('\n');
}

test('the next run ends a stage process a dead run left in the work folder before reusing it', {
  timeout: 120_000,
}, async () => {
  const p = makeProject('faults-kill-');
  p.write(
    'pipelines/one.yaml',
    `stages:
  one:
    uses: shell
    with:
      cmd: "${count('one')}; echo one > $OUT/o.txt"
      outputs: { o: o.txt }
`,
  );
  const status = await cli(['status', 'one', '--json'], p.dir);
  const key = JSON.parse(status.stdout).instances[0].key as string;
  // What a dead run's stage that escaped its watchdog looks like: a live process group
  // recorded for the entry's work folder.
  const stray = spawn('sleep', ['60'], { detached: true, stdio: 'ignore' });
  const start = readFileSync(`/proc/${stray.pid}/stat`, 'utf8').split(') ')[1].split(' ')[19];
  mkdirSync(join(p.dir, 'artifacts/work', key), { recursive: true });
  writeFileSync(join(p.dir, 'artifacts/work', `${key}.processes`), `${stray.pid} ${start}\n`);
  const strayExit = new Promise((r) => stray.on('exit', (_code, sig) => r(sig)));
  const r = await cli(['run', 'one'], p.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /one: ended 1 process group\(s\) a dead run left running in its work folder/);
  assert.equal(await strayExit, 'SIGKILL');
  assert.equal(p.count('one'), 1);
});
