/**
 * The Slurm executor against a real single-node cluster (scripts/slurm-cluster.sh, started by
 * .ci/run; two fake GPUs). Skipped, with the reason, where no cluster answers.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { safeName } from '../../src/runtime/format.js';
import { cli, count, makeProject, startCli, waitFor, type Project } from '../runtime/helpers.js';

const sinfo = spawnSync('sinfo', ['-h', '-N', '-o', '%t'], { encoding: 'utf8' });
const up = sinfo.status === 0 && /^(idle|mix|alloc)/m.test(sinfo.stdout);
const skip = up
  ? false
  : `no Slurm cluster answers (${sinfo.error ? 'sinfo not installed' : sinfo.stderr.trim() || sinfo.stdout.trim()}): ` +
    'start one with scripts/slurm-cluster.sh start';

/** The files at a given path in each of a project's work folders. */
function workFiles(pr: Project, path: string): string[] {
  const work = join(pr.dir, 'artifacts', 'work');
  if (!existsSync(work)) return [];
  return readdirSync(work)
    .map((k) => join(work, k, path))
    .filter(existsSync);
}

/** The files of a given name in the job folders (`.slurm/`) of a project's work folders. */
function jobFiles(pr: Project, name: string): string[] {
  return workFiles(pr, join('.slurm', name));
}

/**
 * Taking the node down kills every job on it, other users' too: that test runs only where the
 * cluster is the test run's alone (.ci/run starts one and says so).
 */
const exclusive =
  process.env.SLURM_TEST_EXCLUSIVE === '1'
    ? false
    : 'takes the node down: runs only on a cluster of its own (SLURM_TEST_EXCLUSIVE=1, as .ci/run sets)';

/** Brings the node back if it is down (ReturnToService=2 usually does it by itself). */
function resumeNode(): void {
  spawnSync('scontrol', ['update', 'nodename=localhost', 'state=resume'], { encoding: 'utf8' });
}

/** Ids of the jobs a project's runs have recorded (and not yet collected). */
function recordedJobs(pr: Project): string[] {
  return jobFiles(pr, 'job.json').map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { jobId: string }).jobId);
}

function stateOf(id: string): string {
  return spawnSync('squeue', ['-h', '-t', 'all', '-j', id, '-o', '%T'], { encoding: 'utf8' }).stdout.trim();
}

/**
 * The environment of a command that sees an squeue that forgets a job as soon as it has ended,
 * as on a busy cluster with a short MinJobAge: only accounting then tells how a job ended.
 */
function forgetfulSqueue(pr: Project): Record<string, string> {
  const squeue = spawnSync('bash', ['-c', 'command -v squeue'], { encoding: 'utf8' }).stdout.trim();
  pr.write(
    'bin/squeue',
    `#!/bin/sh\n${squeue} "$@" | grep -E '^[0-9]+[|](PENDING|CONFIGURING|RUNNING|COMPLETING)[|]'\nexit 0\n`,
  );
  spawnSync('chmod', ['+x', join(pr.dir, 'bin', 'squeue')]);
  return { PATH: `${join(pr.dir, 'bin')}:${process.env.PATH}` };
}

function profile(pr: Project, extra = ''): string {
  return pr.write('slurm.yaml', `poll_interval: 0.3\nwarning_seconds: 0\n${extra}`);
}

const slurm = (pr: Project, args: string[] = [], prof = 'slurm.yaml') => [
  '--executor',
  'slurm',
  '--profile',
  join(pr.dir, prof),
  '--progress',
  'plain',
  ...args,
];

/**
 * Starts a Slurm run of pipeline p, waits until its stage `slow` runs as a job (and, if asked, has
 * reported progress), then SIGKILLs the runner: the job must outlive it. Returns the job's id.
 */
async function killRunnerOfRunningJob(
  t: TestContext,
  pr: Project,
  o: { progressReported?: boolean } = {},
): Promise<string> {
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => run.child.kill('SIGKILL'));
  let ids: string[] = [];
  await waitFor(() => {
    if (pr.count('slow') !== 1) return false;
    ids = recordedJobs(pr);
    return ids.length === 1 && (!o.progressReported || jobFiles(pr, 'progress.json').length === 1);
  }, 60_000);
  run.child.kill('SIGKILL');
  await run.done;
  assert.equal(stateOf(ids[0]), 'RUNNING', 'the job outlives its runner');
  return ids[0];
}

function lockKeys(pr: Project, name = 'p'): Record<string, { key: string; outputs: string }> {
  const lock = JSON.parse(readFileSync(join(pr.pipelines, `${name}.lock.json`), 'utf8')) as {
    instances: Record<string, { key: string; outputs: string }>;
  };
  return Object.fromEntries(Object.entries(lock.instances).map(([n, e]) => [n, { key: e.key, outputs: e.outputs }]));
}

test('a GPU stage sees CUDA_VISIBLE_DEVICES, a failing stage fails alone, a cached re-run submits nothing; keys as a local run', {
  skip,
  timeout: 180_000,
}, async () => {
  const text = `name: p
stages:
  gpu:
    uses: shell
    heavy: true
    resources: { gpu: 1 }
    matrix: { n: [1, 2] }
    with:
      cmd: '${count('gpu')}; echo "$CUDA_VISIBLE_DEVICES" > $OUT/cvd.txt; echo "\${SLURM_LEAK:-none}" > $OUT/leak.txt'
      outputs: { cvd: cvd.txt, leak: leak.txt }
      env: { N: \${{ matrix.n }} }
  broken:
    uses: shell
    heavy: true
    with: { cmd: 'echo about to fail; exit 3' }
  after:
    uses: shell
    needs: [broken]
    with: { cmd: 'true' }
`;
  const pr = makeProject('slurm-');
  pr.write('pipelines/p.yaml', text);
  profile(pr);
  // A runner started inside an allocation must not hand its SLURM_* settings to the jobs.
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir, { SLURM_LEAK: 'from the runner' });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED broken: .*code 3/);
  assert.match(r.stderr, /skipped after/);
  assert.equal(pr.count('gpu'), 2);
  const entries = readdirSync(join(pr.dir, 'artifacts', 'cache'));
  const cvds = entries
    .map((k) => join(pr.dir, 'artifacts', 'cache', k, 'out', 'cvd.txt'))
    .filter(existsSync)
    .map((f) => readFileSync(f, 'utf8').trim());
  assert.equal(cvds.length, 2, 'two GPU results');
  for (const c of cvds) assert.match(c, /^[01]$/, 'one fake GPU per job');
  for (const k of entries) {
    const leak = join(pr.dir, 'artifacts', 'cache', k, 'out', 'leak.txt');
    if (existsSync(leak)) assert.equal(readFileSync(leak, 'utf8').trim(), 'none');
  }
  const log = readFileSync(join(pr.dir, 'artifacts', 'logs', 'p', 'broken.log'), 'utf8');
  assert.match(log, /submitted as Slurm job \d+/);
  assert.match(log, /about to fail/);

  const again = await cli(['run', 'p', 'gpu', ...slurm(pr)], pr.dir);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /submitted|adopting/);
  assert.equal(pr.count('gpu'), 2, 'nothing ran again');

  // The same pipeline run locally computes the same keys: the profile is in none of them.
  const local = makeProject('slurm-local-');
  local.write('pipelines/p.yaml', text);
  await cli(['run', 'p', 'gpu', '--resources', 'gpu=2', '--progress', 'plain'], local.dir);
  const slurmKeys = lockKeys(pr);
  const localKeys = lockKeys(local);
  for (const n of ['gpu[n=1]', 'gpu[n=2]']) assert.equal(slurmKeys[n].key, localKeys[n].key, n);
});

test("bad requests are errors with Slurm's reason: too many GPUs, a time limit the partition never grants", {
  skip,
  timeout: 180_000,
}, async () => {
  const pr = makeProject('slurm-bad-');
  pr.write(
    'pipelines/p.yaml',
    `name: p
stages:
  greedy:
    uses: shell
    heavy: true
    resources: { gpu: 3 }
    with: { cmd: 'echo greedy' }
  long:
    uses: shell
    heavy: true
    with: { cmd: 'true' }
`,
  );
  profile(pr, 'stages:\n  long: { partition: short, time: "10" }\n');
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /FAILED greedy: sbatch refused the job: .*(Requested node configuration is not available|gres)/i,
  );
  const never = /FAILED long: Slurm will never start job (\d+): Partition(TimeLimit|Config)/.exec(r.stderr);
  assert.ok(never, r.stderr);
  assert.equal(stateOf(never[1]), 'CANCELLED', 'the job that could never start is not left in the queue');
});

test('Ctrl-C cancels running and pending jobs in one go and exits 130', { skip, timeout: 180_000 }, async (t) => {
  const pr = makeProject('slurm-int-');
  pr.write(
    'pipelines/p.yaml',
    `name: p
stages:
  hog:
    uses: shell
    heavy: true
    resources: { gpu: 2 }
    matrix: { i: [1, 2, 3] }
    with: { cmd: 'sleep 300', env: { I: \${{ matrix.i }} } }
`,
  );
  profile(pr);
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => run.child.kill('SIGKILL'));
  let ids: string[] = [];
  await waitFor(() => {
    ids = recordedJobs(pr);
    return ids.length === 3;
  }, 60_000);
  await waitFor(() => {
    const states = ids.map((id) => stateOf(id));
    return states.filter((s) => s === 'RUNNING').length === 1 && states.filter((s) => s === 'PENDING').length === 2;
  }, 60_000);
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  await waitFor(() => ids.every((id) => stateOf(id) === 'CANCELLED'), 15_000);
  assert.deepEqual(recordedJobs(pr), [], 'no job left for a later run to adopt');
});

test("a SIGKILLed runner's jobs are adopted by the next run: no second submission, same outputs as a local run; " +
  'status lists them meanwhile', {
  skip,
  timeout: 180_000,
}, async (t) => {
  const text = `name: p
stages:
  first:
    uses: shell
    heavy: true
    with: { cmd: 'echo a > $OUT/a.txt', outputs: { a: a.txt } }
  slow:
    uses: shell
    heavy: true
    needs: [first]
    with:
      cmd: '${count('slow')}; echo "::progress 0.5 halfway"; until [ -f $PIPELINE_DIR/../release ]; do sleep 0.2; done; echo done > $OUT/b.txt'
      outputs: { b: b.txt }
`;
  const pr = makeProject('slurm-adopt-');
  pr.write('pipelines/p.yaml', text);
  profile(pr);
  const ids = [await killRunnerOfRunningJob(t, pr, { progressReported: true })];

  const status = await cli(['status', 'p'], pr.dir);
  // The stage's latest report, described as the live display does (percent, message, ETA).
  assert.match(
    status.stdout,
    new RegExp(`running +slow +Slurm job ${ids[0]} running on localhost: 50% {2}halfway {2}ETA \\d[\\d.]*m?s\n`),
  );
  const show = await cli(['show', 'p', 'slow'], pr.dir);
  assert.match(show.stderr, new RegExp(`slow is not computed: in progress elsewhere, Slurm job ${ids[0]}`));

  const again = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => again.child.kill('SIGKILL'));
  await waitFor(
    () => /adopted Slurm job/.test(readFileSync(join(pr.dir, 'artifacts', 'logs', 'p', 'slow.log'), 'utf8')),
    60_000,
  );
  // The job's progress reaches the runner's display (plain: one line per stage every 5 s).
  let shown = '';
  again.child.stderr!.on('data', (d) => {
    shown += d;
  });
  await waitFor(() => /slow {2}50% {2}halfway \(Slurm job \d+ running on localhost\)/.test(shown), 30_000);
  // The stage finishes only now, watched by the second runner.
  pr.write('release', '');
  const r = await again.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`slow: adopting Slurm job ${ids[0]}`));
  assert.doesNotMatch(r.stderr, /start first/, 'first was committed by the killed run');
  assert.equal(pr.count('slow'), 1, 'the stage ran once');

  const local = makeProject('slurm-adopt-local-');
  local.write('pipelines/p.yaml', text);
  local.write('release', '');
  const l = await cli(['run', 'p', '--progress', 'plain'], local.dir);
  assert.equal(l.code, 0, l.stderr);
  assert.deepEqual(lockKeys(pr), lockKeys(local));
});

test("a local run never races a SIGKILLed Slurm runner's live job: it waits for the job and collects its outputs; " +
  'Ctrl-C leaves the job alone for a later run', {
  skip,
  timeout: 180_000,
}, async (t) => {
  const text = `name: p
stages:
  slow:
    uses: shell
    heavy: true
    with:
      cmd: '${count('slow')}; echo "::progress 0.5 halfway"; until [ -f $PIPELINE_DIR/../release ]; do sleep 0.2; done; echo done > $OUT/b.txt'
      outputs: { b: b.txt }
`;
  const pr = makeProject('slurm-local-adopt-');
  pr.write('pipelines/p.yaml', text);
  profile(pr);
  const ids = [await killRunnerOfRunningJob(t, pr)];
  const status = await cli(['status', 'p'], pr.dir);
  assert.match(status.stdout, new RegExp(`running +slow +Slurm job ${ids[0]} running on localhost`));
  const dry = await cli(['run', 'p', '--dry-run'], pr.dir);
  assert.match(dry.stdout, new RegExp(`^adopt +slow: Slurm job ${ids[0]} running on localhost`, 'm'));

  // A local run (the profile only says how often to ask Slurm) waits for the job: Ctrl-C while
  // it waits ends the run, not the job, which a later run adopts.
  const local = (): ReturnType<typeof startCli> => {
    const l = startCli(['run', 'p', '--progress', 'plain', '--profile', join(pr.dir, 'slurm.yaml')], pr.dir);
    t.after(() => l.child.kill('SIGKILL'));
    return l;
  };
  const waitAdopting = async (l: ReturnType<typeof startCli>) => {
    let shown = '';
    l.child.stderr!.on('data', (d) => {
      shown += d;
    });
    // Running the stage a second time (the race) ends the wait too, and fails below.
    await waitFor(() => /adopting Slurm job/.test(shown) || pr.count('slow') > 1, 60_000);
    assert.equal(pr.count('slow'), 1, `the local run ran the stage again beside job ${ids[0]}:\n${shown}`);
    return () => shown;
  };
  const first = local();
  await waitAdopting(first);
  first.child.kill('SIGINT');
  const interrupted = await first.done;
  assert.equal(interrupted.code, 130, interrupted.stderr);
  assert.match(interrupted.stderr, new RegExp(`Slurm job ${ids[0]} left running`));
  assert.equal(stateOf(ids[0]), 'RUNNING', 'Ctrl-C of a local run does not cancel the job it waited for');
  assert.deepEqual(recordedJobs(pr), ids, 'the job is still recorded for a later run');

  const second = local();
  const shown = await waitAdopting(second);
  await waitFor(() => /slow {2}50% {2}halfway \(Slurm job \d+ running on localhost\)/.test(shown()), 30_000);
  pr.write('release', '');
  const r = await second.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`slow: adopting Slurm job ${ids[0]} of an earlier run`));
  assert.equal(pr.count('slow'), 1, 'the stage ran once, in the job');
  const key = lockKeys(pr).slow.key;
  assert.equal(readFileSync(join(pr.dir, 'artifacts', 'cache', key, 'out', 'b.txt'), 'utf8'), 'done\n');
  assert.deepEqual(recordedJobs(pr), []);
});

test('status tells how a job ended while no runner watched: from squeue, and from sacct once squeue has forgotten it', {
  skip,
  timeout: 120_000,
}, async (t) => {
  const pr = makeProject('slurm-status-');
  pr.write(
    'pipelines/p.yaml',
    `name: p\nstages:\n  long:\n    uses: shell\n    heavy: true\n    with: { cmd: '${count('long')}; sleep 300' }\n`,
  );
  profile(pr);
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => run.child.kill('SIGKILL'));
  let ids: string[] = [];
  await waitFor(() => {
    if (pr.count('long') !== 1) return false;
    ids = recordedJobs(pr);
    return ids.length === 1;
  }, 60_000);
  run.child.kill('SIGKILL');
  await run.done;
  spawnSync('scancel', [ids[0]]);
  await waitFor(() => stateOf(ids[0]) === 'CANCELLED', 30_000);
  // The stage's own message, when SIGTERM let it write its result file before the job ended.
  const ended = `Slurm job ${ids[0]} ended CANCELLED on localhost; the next run reports the stage failed(: interrupted)?`;
  const line = new RegExp(`^ended +long +${ended}$`, 'm');
  assert.match((await cli(['status', 'p'], pr.dir)).stdout, line);
  // show says the same, and no longer that the stage is in progress elsewhere.
  const show = await cli(['show', 'p', 'long'], pr.dir);
  assert.match(show.stderr, new RegExp(`^long is not computed: ${ended}$`, 'm'));

  const sacct = () =>
    spawnSync('sacct', ['-c', '-X', '-P', '-n', '-j', ids[0], '-o', 'State'], { encoding: 'utf8' }).stdout;
  await waitFor(() => sacct().includes('CANCELLED'), 30_000);
  const forgetful = forgetfulSqueue(pr);
  assert.match((await cli(['status', 'p'], pr.dir, forgetful)).stdout, line);
  const json = JSON.parse((await cli(['status', 'p', '--json'], pr.dir, forgetful)).stdout);
  assert.deepEqual(json.instances[0].job, {
    id: ids[0],
    state: 'CANCELLED',
    node: 'localhost',
    reason: null,
    next: 'fail',
    nextText: 'the next run reports the stage failed: interrupted',
  });

  // The next run reports the stage failed (cancelled outside any run); nothing is resubmitted.
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir, forgetful);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED long/);
  assert.equal(pr.count('long'), 1);
});

/**
 * A shell stage that counts to `steps`, one step per `seconds`, resuming from its checkpoint.
 * `steps` is a shell expression of `s`, the step it resumed from.
 */
function stepper(id: string, steps: number | string, seconds: number): string {
  // The checkpoint is replaced by a rename: a kill in the middle of a write must not empty it.
  return `  ${id}:
    uses: shell
    heavy: true
    with:
      cmd: |
        s=$(cat $WORK/step 2>/dev/null || echo 0)
        echo "start $s" >> $WORK/starts
        end=$((${steps}))
        while [ $s -lt $end ]; do sleep ${seconds}; s=$((s+1)); echo $s > $WORK/step.new; mv $WORK/step.new $WORK/step; done
        cp $WORK/starts $OUT/starts.txt
      outputs: { starts: starts.txt }
`;
}

/** The steps each job of a stepper started from. */
function startsOf(pr: Project, instance: string): number[] {
  const file = join(pr.dir, 'artifacts', 'cache', lockKeys(pr)[instance].key, 'out', 'starts.txt');
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split(' ')[1]));
}

test('a job stopped by its time limit, or by the warning before it, is submitted again and resumes from its checkpoint', {
  skip,
  timeout: 240_000,
}, async () => {
  const pr = makeProject('slurm-timeout-');
  // steps: the first job counts until the 1-minute limit stops it (Slurm enforces it up to 30 s
  // late), the second one does 3 more steps from where the first stopped.
  // warned: told to stop by USR1 50 s before its 1-minute limit (Slurm sends it at its next
  // time check: 10-40 s into the job), 45 steps of 1 s need two jobs or more. Both run at once.
  pr.write(
    'pipelines/p.yaml',
    `name: p\nstages:\n${stepper('steps', 's == 0 ? 1000 : s + 3', 1)}${stepper('warned', 45, 1)}`,
  );
  profile(
    pr,
    'retries: { TIMEOUT: 5 }\nstages:\n  steps: { time: "1" }\n  warned: { time: "1", sbatch_args: ["--signal=B:USR1@50"] }\n',
  );
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /steps: job \d+ reached its time limit: submitting it again \(TIMEOUT retry 1 of 5\)/);
  const steps = startsOf(pr, 'steps');
  assert.equal(steps.length, 2, String(steps));
  assert.equal(steps[0], 0);
  assert.ok(steps[1] >= 30, `resumed at step ${steps[1]}`);
  assert.match(r.stderr, /warned: stopped at the time-limit warning: submitting it again \(TIMEOUT retry 1 of 5\)/);
  const warned = startsOf(pr, 'warned');
  assert.ok(warned.length >= 2 && warned[0] === 0, String(warned));
  for (let i = 1; i < warned.length; i++) assert.ok(warned[i] > warned[i - 1] && warned[i] < 45, String(warned));
});

test('a preempted job is submitted again and resumes from its checkpoint; sacct tells PREEMPTED once squeue has forgotten the job', {
  skip,
  timeout: 180_000,
}, async (t) => {
  const pr = makeProject('slurm-preempt-');
  pr.write(
    'pipelines/p.yaml',
    `name: p
stages:
  steps:
    uses: shell
    heavy: true
    resources: { gpu: 2 }
    with:
      cmd: |
        s=$(cat $WORK/step 2>/dev/null || echo 0)
        echo "start $s" >> $WORK/starts
        while [ $s -lt 16 ]; do sleep 0.5; s=$((s+1)); echo $s > $WORK/step.new; mv $WORK/step.new $WORK/step; done
        cp $WORK/starts $PIPELINE_DIR/../starts.txt
        echo $s > $OUT/steps.txt
      outputs: { steps: steps.txt }
`,
  );
  // The checkpoint is replaced by a rename: a kill in the middle of a write must not empty it.
  // Jobs of partition low are preempted by jobs of partition high (scripts/slurm-cluster.sh).
  profile(pr, 'stages:\n  steps: { partition: low }\n');
  // The runner learns how the job ended from sacct (here the job completion log).
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir, forgetfulSqueue(pr));
  t.after(() => run.child.kill('SIGKILL'));
  const step = () => workFiles(pr, 'step').map((f) => Number(readFileSync(f, 'utf8')))[0] ?? 0;
  await waitFor(() => step() >= 3, 60_000);
  const high = spawnSync(
    'sbatch',
    ['--parsable', '-p', 'high', '--gres=gpu:2', '-o', '/dev/null', '--wrap', 'sleep 1'],
    {
      cwd: pr.dir,
      encoding: 'utf8',
    },
  );
  assert.equal(high.status, 0, high.stderr);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /steps: job \d+ was preempted: submitting it again \(PREEMPTED retry 1 of 5\)/);
  const starts = readFileSync(join(pr.dir, 'starts.txt'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => Number(l.split(' ')[1]));
  assert.equal(starts.length, 2, String(starts));
  assert.ok(starts[0] === 0 && starts[1] >= 3 && starts[1] < 16, `resumed at step ${starts[1]}`);
  // The same output as an uninterrupted run.
  const out = readFileSync(join(pr.dir, 'artifacts', 'cache', lockKeys(pr).steps.key, 'out', 'steps.txt'), 'utf8');
  assert.equal(out.trim(), '16');
});

test('a job whose node fails is submitted again and resumes from its checkpoint', {
  skip: skip || exclusive,
  timeout: 180_000,
}, async (t) => {
  const pr = makeProject('slurm-nodefail-');
  pr.write('pipelines/p.yaml', `name: p\nstages:\n${stepper('steps', 16, 0.5)}`);
  profile(pr);
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => {
    run.child.kill('SIGKILL');
    resumeNode();
  });
  const step = () => workFiles(pr, 'step').map((f) => Number(readFileSync(f, 'utf8')))[0] ?? 0;
  await waitFor(() => step() >= 3, 60_000);
  const down = spawnSync(
    'scontrol',
    ['update', 'nodename=localhost', 'state=down', 'reason=pipeline node failure test'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(down.status, 0, down.stderr);
  await waitFor(() => {
    if (/^(idle|mix|alloc)/m.test(spawnSync('sinfo', ['-h', '-N', '-o', '%t'], { encoding: 'utf8' }).stdout))
      return true;
    resumeNode();
    return false;
  }, 60_000);
  const r = await run.done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /steps: job \d+ lost its node \(NODE_FAIL\): submitting it again \(NODE_FAIL retry 1 of 2\)/);
  const starts = startsOf(pr, 'steps');
  assert.equal(starts.length, 2, String(starts));
  assert.ok(starts[0] === 0 && starts[1] >= 3 && starts[1] < 16, `resumed at step ${starts[1]}`);
});

test("the demo's sweeps through Slurm: the same cache keys and outputs as a local run", {
  skip,
  timeout: 480_000,
}, async () => {
  // The demo's own files, shrunk by --set to 2 widths x 2 data sizes and 2 widths x 2 rates.
  const repo = join(dirname(fileURLToPath(import.meta.url)), '../../..');
  const toy = [
    'dataset_rows=6000',
    'eval_rows=1024',
    'norm_batches=2',
    'n_features=32',
    'mean_active=3',
    'l0_warmup_steps=10',
    'small_d_sae=[16,32]',
    'small_n_samples=[1000,2000]',
    'sweep_d_sae=[16,32]',
    'sweep_n_samples=2000',
    'sweep_lrs=[5.0e-3,1.0e-2]',
  ].flatMap((s) => ['--set', s]);
  const projects = [makeProject('slurm-demo-'), makeProject('slurm-demo-local-')];
  for (const pr of projects)
    for (const f of ['demo.yaml', 'scaling.yaml']) copyFileSync(join(repo, 'pipelines', f), join(pr.pipelines, f));
  const [viaSlurm, local] = projects;
  profile(viaSlurm);
  const s = await cli(['run', 'demo', 'small', 'lr_sweep', ...slurm(viaSlurm), ...toy], viaSlurm.dir);
  assert.equal(s.code, 0, s.stderr);
  // 4 small runs and 2 sweep runs: the sweep points at the base lr share the small runs' keys.
  assert.equal((s.stderr.match(/done (small|lr_sweep)\[/g) ?? []).length, 6, s.stderr);
  const l = await cli(['run', 'demo', 'small', 'lr_sweep', '--progress', 'plain', ...toy], local.dir);
  assert.equal(l.code, 0, l.stderr);
  const [a, b] = [lockKeys(viaSlurm, 'demo'), lockKeys(local, 'demo')];
  assert.ok(Object.keys(a).some((n) => n.startsWith('lr_sweep[')));
  assert.deepEqual(
    Object.fromEntries(Object.entries(a).map(([n, e]) => [n, e.key])),
    Object.fromEntries(Object.entries(b).map(([n, e]) => [n, e.key])),
    'same keys',
  );
  // The trained SAEs are the same bytes (metrics.jsonl differs: it names its project's store path).
  for (const [n, e] of Object.entries(a)) {
    const sae = (pr: Project) => join(pr.dir, 'artifacts', 'cache', e.key, 'out', 'sae');
    if (!existsSync(sae(viaSlurm))) continue;
    for (const f of readdirSync(sae(viaSlurm)))
      assert.ok(readFileSync(join(sae(viaSlurm), f)).equals(readFileSync(join(sae(local), f))), `${n}: sae/${f}`);
  }
  assert.match(
    readFileSync(
      join(
        viaSlurm.dir,
        'artifacts',
        'logs',
        'demo',
        `${safeName(Object.keys(a).find((n) => n.startsWith('small['))!)}.log`,
      ),
      'utf8',
    ),
    /submitted as Slurm job/,
  );
});
