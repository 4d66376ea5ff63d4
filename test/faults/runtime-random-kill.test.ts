/**
 * Random SIGKILLs of the runner and of its stages (in-process and heavy) over a pipeline
 * whose stages resume from their work folders. After the last kill, one clean run finishes:
 * every result is right, `status --verify` finds every entry intact, and no stage ever ran
 * twice at once in one work folder. The seed is printed; PIPELINE_FAULT_SEED replays one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { processStart } from '../../src/runtime/fsutil.js';
import { alive, cli, makeProject, startCli, waitFor } from '../runtime/helpers.js';

/** step.sh NAME N [INPUT]: counts to N in $WORK (resuming after a kill), then writes its output. */
const STEP = `name=$1; n=$2; in=$3
marker=$PIPELINE_DIR/running-$name
# A process is its pid and start time (field 22 of /proc/PID/stat): pids are recycled (pid_max
# may be 32768), and a busy machine reuses a dead step's pid within a minute.
started() { local s; s=$(cat /proc/$1/stat 2>/dev/null) || return; s=\${s##*) }; set -- $s; [ "$1" != Z ] && echo "\${20}"; }
if [ -f "$marker" ]; then
  read -r old old_start < "$marker"
  if [ -n "$old_start" ] && [ "$(started $old)" = "$old_start" ]; then echo "$name $old $$" >> $PIPELINE_DIR/races; fi
  if [ -n "$(started $old)" ] && [ "$(started $old)" != "$old_start" ]; then
    echo "$name $old: $(tr '\\0' ' ' < /proc/$old/cmdline 2>/dev/null)" >> $PIPELINE_DIR/recycled; fi
fi
echo "$$ $(started $$)" > "$marker"
echo "$$ $(started $$)" > $PIPELINE_DIR/pid-$name
i=$(cat $WORK/i 2>/dev/null || echo 0)
while [ "$i" -lt "$n" ]; do sleep 0.05; i=$((i+1)); echo $i > $WORK/i.tmp; mv $WORK/i.tmp $WORK/i; done
{ if [ -n "$in" ]; then cat "$in"; fi; echo "$name $i"; } > $OUT/out.txt
rm -f "$marker"
`;

const step = (id: string, n: number, from?: string, heavy = false) => `  ${id}:
    uses: shell
    heavy: ${heavy}
    with:
      cmd: bash $INPUT_0 ${id} ${n}${from ? ' $INPUT_1' : ''}
      inputs: [step.sh${from ? `, "\${{ stages.${from}.outputs.o }}"` : ''}]
      outputs: { o: out.txt }
`;

const PIPELINE = `stages:
${step('a', 20)}${step('b', 20, 'a')}${step('c', 20, 'b', true)}${step('d', 30, undefined, true)}`;

const EXPECTED: Record<string, string> = { a: 'a 20\n', b: 'a 20\nb 20\n', c: 'a 20\nb 20\nc 20\n', d: 'd 30\n' };

/** mulberry32: a small seeded generator, so that a failing sequence of kills can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('random SIGKILLs of runner and stages: the resumed pipeline ends right, nothing raced', {
  timeout: 300_000,
}, async (t) => {
  const seed = Number(process.env.PIPELINE_FAULT_SEED ?? Date.now() % 100_000);
  t.diagnostic(`PIPELINE_FAULT_SEED=${seed}`);
  const random = rng(seed);
  const p = makeProject('faults-kill-');
  p.write('pipelines/step.sh', STEP);
  p.write('pipelines/kill.yaml', PIPELINE);
  const kills: string[] = [];
  for (let round = 0; round < 3; round++) {
    for (const id of Object.keys(EXPECTED)) rmSync(join(p.pipelines, `pid-${id}`), { force: true });
    const run = startCli(['run', 'kill', '--jobs', '2'], p.dir);
    let ended = false;
    void run.done.then(() => (ended = true));
    // Kill at a random moment once the stages run (the runner's start-up time varies with load).
    await waitFor(
      () => ended || Object.keys(EXPECTED).some((id) => existsSync(join(p.pipelines, `pid-${id}`))),
      60_000,
    );
    await new Promise((r) => setTimeout(r, random() * 2500));
    const stages = Object.keys(EXPECTED)
      .map((id) => ({ id, pid: runningStep(join(p.pipelines, `pid-${id}`)) }))
      .filter((s) => s.pid !== undefined);
    if (random() < 0.5 || !stages.length) {
      run.child.kill('SIGKILL');
      kills.push('runner');
    } else {
      const victim = stages[Math.floor(random() * stages.length)];
      try {
        process.kill(victim.pid!, 'SIGKILL');
        kills.push(victim.id);
      } catch {
        kills.push(`${victim.id} (already done)`);
      }
    }
    const r = await run.done;
    // A run that ended well (a kill that came too late) reports its sinks: they must be right.
    if (r.code === 0)
      for (const id of ['c', 'd'])
        assert.equal(readFileSync(resultFile(r.stderr, id), 'utf8'), EXPECTED[id], `round ${round}: ${id}`);
  }
  t.diagnostic(`killed: ${kills.join(', ')}`);
  const final = await cli(['run', 'kill', '--jobs', '2'], p.dir);
  assert.equal(final.code, 0, final.stderr);
  const shown = JSON.parse((await cli(['show', 'kill', 'c', '--json'], p.dir)).stdout);
  assert.equal(readFileSync(shown.o, 'utf8'), EXPECTED.c);
  const status = await cli(['status', 'kill', '--verify'], p.dir);
  assert.match(status.stdout, /all 4 instances cached/, status.stdout);
  const recycled = join(p.pipelines, 'recycled');
  if (existsSync(recycled))
    t.diagnostic(`a dead step's pid was reused (not a race): ${readFileSync(recycled, 'utf8')}`);
  assert.ok(
    !existsSync(join(p.pipelines, 'races')),
    `stages raced: ${existsSync(join(p.pipelines, 'races')) ? readFileSync(join(p.pipelines, 'races'), 'utf8') : ''}`,
  );
});

/** The pid of the step a pid file names while that very process runs (not one that reuses its pid). */
function runningStep(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const [pid, start] = readFileSync(file, 'utf8').trim().split(' ').map(Number);
  return alive(pid) && processStart(pid) === start ? pid : undefined;
}

/** The file a successful run reported for instance `id` (`id.o: PATH` lines, sinks only). */
function resultFile(stderr: string, id: string): string {
  const m = new RegExp(`^${id}\\.o: (.*)$`, 'm').exec(stderr);
  assert.ok(m, stderr);
  return m[1];
}
