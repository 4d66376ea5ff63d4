/**
 * The Slurm executor's pure parts, everywhere (no cluster needed): the profile's schema and
 * its positioned errors, batch script generation, squeue parsing, and the state decisions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Accounting } from '../../src/runtime/slurm/accounting.js';
import { runTool } from '../../src/runtime/slurm/tool.js';
import type { PipelineError } from '../../src/runtime/errors.js';
import { describeProgress } from '../../src/runtime/progress.js';
import {
  jobProgress,
  QueuePoller,
  QueryUnanswered,
  watchJob,
  type JobFiles,
  type JobRecord,
} from '../../src/runtime/slurm/watch.js';
import { alive, cli, count, makeProject, startCli, waitFor } from '../runtime/helpers.js';
import { jobStatus, jobsInProgress } from '../../src/runtime/slurm/jobs.js';
import { parseProfile, runsLocally } from '../../src/runtime/slurm/profile.js';
import { batchScript, sbatchOptions, shellQuote, type JobRequest } from '../../src/runtime/slurm/script.js';
import {
  decide,
  describeJob,
  nextSource,
  parseJobLines,
  parseSqueue,
  phaseOf,
  viewOf,
  type Phase,
  type QueueView,
  type ResultFile,
} from '../../src/runtime/slurm/state.js';

const request = (over: Partial<JobRequest> = {}): JobRequest => ({
  name: 'pl-0123456789ab-train',
  instance: 'train[lr=0.01]',
  key: '0123456789abcdef',
  jobDir: '/shared/artifacts/work/0123/.slurm',
  logFile: '/shared/artifacts/logs/demo/train.log',
  warnedFile: '/shared/artifacts/work/0123/.slurm/warned',
  command: [
    '/usr/bin/node',
    '/repo/dist/src/cli.js',
    'exec',
    '/shared/spec.json',
    '--result',
    "/shared/it's/result.json",
  ],
  resources: {},
  attempt: 1,
  ...over,
});

test('profile: defaults fill an empty profile; errors name file, line and field', () => {
  const p = parseProfile('', 'slurm.yaml');
  assert.equal(p.time, '1:00:00');
  assert.equal(p.poll_interval, 30);
  assert.deepEqual(p.retries, { TIMEOUT: 2, NODE_FAIL: 2, PREEMPTED: 5 });
  assert.throws(
    () => parseProfile('partition: gpu\ntime: 2 hours\n', 'slurm.yaml'),
    (e: PipelineError) =>
      /^slurm\.yaml:2:7: Slurm profile slurm\.yaml field time: "2 hours" (does not match|is not a Slurm time limit)/.test(
        e.format(),
      ),
  );
  assert.throws(
    () => parseProfile('stages:\n  final:\n    gpu: 2\n', 'p.yaml'),
    (e: PipelineError) => /^p\.yaml:3:5: .*field stages\.final\.gpu: unknown key 'gpu'/.test(e.format()),
  );
  assert.throws(
    () => parseProfile('retries: {TIMEOUT: -1}\n', 'p.yaml'),
    (e: PipelineError) => /field retries\.TIMEOUT/.test(e.format()),
  );
});

test('profile: a stage runs locally by id, by type, or by its own override', () => {
  const p = parseProfile(
    'local: [fit, report]\nstages:\n  budget: { local: true }\n  fit: { local: false }\n',
    'p.yaml',
  );
  assert.equal(runsLocally(p, 'report', 'report'), true);
  assert.equal(runsLocally(p, 'x', 'fit'), true);
  assert.equal(runsLocally(p, 'fit', 'fit-law'), false);
  assert.equal(runsLocally(p, 'budget', 'flop-budget'), true);
  assert.equal(runsLocally(p, 'train', 'train-sae'), false);
});

test('script: resources map to sbatch options, a stage override wins, GPU jobs go to the GPU partition', () => {
  const p = parseProfile(
    'partition: cpu\ngpu_partition: gpu\naccount: lab\nqos: short\ntime: "30"\nsbatch_args: [--constraint=a100]\n',
    'p.yaml',
  );
  const opts = sbatchOptions(p, request({ resources: { gpu: 2, cpu: 4, mem: 16 } }));
  for (const o of [
    '--no-requeue',
    '--open-mode=append',
    '--signal=B:USR1@120',
    '--time=30',
    '--partition=gpu',
    '--account=lab',
    '--qos=short',
    '--gres=gpu:2',
    '--cpus-per-task=4',
    '--mem=16G',
    '--constraint=a100',
  ]) {
    assert.ok(opts.includes(o), `${o} in ${opts.join(' ')}`);
  }
  const cpuOnly = sbatchOptions(
    p,
    request({ resources: { gpu: 1 }, override: { gpus: 0, time: '2:00:00', mem: '500M' } }),
  );
  assert.ok(
    cpuOnly.includes('--partition=cpu') && cpuOnly.includes('--time=2:00:00') && cpuOnly.includes('--mem=500M'),
  );
  assert.ok(!cpuOnly.some((o) => o.startsWith('--gres')));
});

test('script: a valid bash file with setup lines, the exec command quoted, the warning trap', () => {
  const p = parseProfile('setup: ["module load cuda", "source /opt/venv/bin/activate"]\n', 'p.yaml');
  const text = batchScript(p, request());
  assert.match(text, /^#!\/bin\/bash\n#SBATCH --job-name=pl-0123456789ab-train\n/);
  assert.match(text, /set -e\nmodule load cuda\nsource \/opt\/venv\/bin\/activate\nset \+e\n/);
  assert.ok(text.includes(`--result '/shared/it'\\''s/result.json' &`));
  assert.match(text, /trap .*warned.* USR1/);
  assert.doesNotMatch(text, /--wrap/);
  const check = spawnSync('bash', ['-n'], { input: text });
  assert.equal(check.status, 0, String(check.stderr));
  assert.equal(shellQuote('a b'), "'a b'");
});

test('squeue: one line per job, empty node and None reason normalised, odd lines ignored', () => {
  const views = parseSqueue(
    '12|PENDING|Priority||pl-a\n13|RUNNING|None|node07|pl-b|x\nsqueue: error: something\n14|COMPLETED|None|node07|pl-c\n',
  );
  assert.deepEqual([...views.keys()], ['12', '13', '14']);
  assert.deepEqual(views.get('12'), { jobId: '12', state: 'PENDING', reason: 'Priority', node: '', name: 'pl-a' });
  assert.equal(views.get('13')!.name, 'pl-b|x');
  assert.equal(views.get('13')!.reason, '');
});

test('decisions: the result file wins over the scheduler; end states map to retries or failures', () => {
  const v = (state: string, reason = ''): QueueView => ({ jobId: '7', state, reason, node: 'n1', name: 'pl-x' });
  const ok = { ok: true as const, outputs: { x: 1 } };
  assert.deepEqual(decide(v('FAILED'), ok, false), { kind: 'done', outputs: { x: 1 } });
  assert.deepEqual(decide(v('RUNNING'), undefined, false), { kind: 'running', view: v('RUNNING') });
  assert.deepEqual(decide(v('PENDING', 'Resources'), undefined, false), {
    kind: 'queued',
    view: v('PENDING', 'Resources'),
  });
  const never = decide(v('PENDING', 'PartitionTimeLimit'), undefined, false);
  assert.ok(never.kind === 'failed' && never.cancel && /PartitionTimeLimit/.test(never.message));
  assert.equal((decide(v('TIMEOUT'), undefined, false) as { state: string }).state, 'TIMEOUT');
  assert.equal((decide(v('NODE_FAIL'), undefined, false) as { state: string }).state, 'NODE_FAIL');
  assert.equal((decide(v('PREEMPTED'), undefined, false) as { state: string }).state, 'PREEMPTED');
  assert.equal((decide(undefined, undefined, false) as { state: string }).state, 'NODE_FAIL');
  // The warning made the stage stop with an error (its checkpoint saved): a retry, not a failure.
  assert.equal(decide(v('FAILED'), { ok: false, message: 'aborted at step 40' }, true).kind, 'retry');
  assert.deepEqual(decide(v('FAILED'), { ok: false, message: 'boom' }, false), { kind: 'failed', message: 'boom' });
  // The stage failed because the time limit stopped it: a retry, known only once the job has ended.
  assert.equal(decide(v('RUNNING'), { ok: false, message: 'interrupted' }, false).kind, 'running');
  assert.equal(decide(v('TIMEOUT'), { ok: false, message: 'interrupted' }, false).kind, 'retry');
  assert.match(
    (decide(v('COMPLETED'), undefined, false) as { message: string }).message,
    /ended COMPLETED without a result/,
  );
  assert.match((decide(v('OUT_OF_MEMORY'), undefined, false) as { message: string }).message, /out of memory/);
  assert.match((decide(v('CANCELLED'), undefined, false) as { message: string }).message, /cancelled outside/);
});

test('sacct: job lines parsed like squeue\'s (steps skipped, "CANCELLED by 0", no node); the last job of an id and name wins', () => {
  // Captured from `sacct -c -X -P -n -j ... -o JobID,State,Reason,NodeList,JobName` on the test
  // cluster (a job id used twice: the controller was restarted), plus lines slurmdbd's sacct adds.
  const text = [
    '3|PREEMPTED||localhost|pl-0123456789ab-steps',
    '4|COMPLETED||localhost|wrap',
    '5|CANCELLED by 0|None|None assigned|pl-aaaaaaaaaaaa-x',
    '5.batch|CANCELLED||localhost|batch',
    '3|TIMEOUT||localhost|pl-0123456789ab-steps',
    '3|FAILED||localhost|pl-ffffffffffff-other',
  ].join('\n');
  const views = parseJobLines(text);
  assert.equal(views.length, 5);
  assert.deepEqual(views[2], { jobId: '5', state: 'CANCELLED', reason: '', node: '', name: 'pl-aaaaaaaaaaaa-x' });
  assert.equal(viewOf(views, '3', 'pl-0123456789ab-steps')?.state, 'TIMEOUT');
  assert.equal(viewOf(views, '3', 'pl-nobody')?.state, undefined);
  assert.equal(
    decide(viewOf(views, '3', 'pl-0123456789ab-steps'), { ok: false, message: 'interrupted' }, false).kind,
    'retry',
  );
});

test('sacct: without slurmdbd the job completion log answers; with neither, no accounting (one note, no error)', async () => {
  assert.equal(nextSource('sacct', 'Slurm accounting storage is disabled\n'), 'sacct -c');
  assert.equal(nextSource('sacct -c', 'Slurm job completion is disabled\n'), 'none');
  assert.equal(nextSource('sacct', 'sacct: error: Problem talking to the database: Connection refused'), undefined);
  // A sacct that answers as on a cluster whose JobCompType is none: both sources disabled.
  const bin = mkdtempSync(join(tmpdir(), 'sacct-'));
  const calls = join(bin, 'calls');
  writeFileSync(
    join(bin, 'sacct'),
    `#!/bin/sh\necho "$*" >> ${calls}\ncase " $* " in *" -c "*) echo "Slurm job completion is disabled" >&2;; *) ` +
      `echo "Slurm accounting storage is disabled" >&2;; esac\nexit 1\n`,
  );
  chmodSync(join(bin, 'sacct'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  try {
    const notes: string[] = [];
    const accounting = new Accounting((line) => notes.push(line));
    assert.deepEqual(await accounting.endStates(['12', '13']), []);
    assert.deepEqual(await accounting.endStates(['14']), []);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /no Slurm accounting \(Slurm job completion is disabled\): .*result file alone/);
    const asked = readFileSync(calls, 'utf8').trim().split('\n');
    assert.equal(asked.length, 2, 'each source asked once, then never again');
    assert.match(asked[0], /^-X -P -n -j 12,13 -o JobID,State,Reason,NodeList,JobName$/);
    assert.match(asked[1], /^-c -X /);
  } finally {
    process.env.PATH = path;
  }
});

/** A folder on PATH whose Slurm commands are the given shell scripts; restores PATH after `body`. */
async function withTools(tools: Record<string, string>, body: (bin: string) => Promise<void>): Promise<void> {
  const bin = mkdtempSync(join(tmpdir(), 'slurm-tools-'));
  for (const [name, script] of Object.entries(tools)) {
    writeFileSync(join(bin, name), `#!/bin/sh\n${script}\n`);
    chmodSync(join(bin, name), 0o755);
  }
  const path = process.env.PATH;
  process.env.PATH = `${bin}:${path}`;
  try {
    await body(bin);
  } finally {
    process.env.PATH = path;
  }
}

test('tools: only a command that cannot be started reads as not installed; one killed (a timeout) does not', async () => {
  assert.equal((await runTool('no-such-slurm-tool-here', [])).code, 127);
  // runTool's timeout kills the command as this one kills itself: no exit status either.
  await withTools({ sacct: 'kill -KILL $$' }, async () => {
    assert.notEqual((await runTool('sacct', [])).code, 127);
    const notes: string[] = [];
    const accounting = new Accounting((line) => notes.push(line));
    assert.match(
      JSON.stringify(await accounting.endStates(['12'])),
      /^\{"error":"killed by SIGKILL"\}$/,
      'no answer: ask again later',
    );
    assert.ok(accounting.available, 'a sacct that was killed is not a cluster without accounting');
    assert.match(notes.join('\n'), /sacct failed/);
  });
});

const record = (jobId: string, name: string): JobRecord => ({
  jobId,
  name,
  instance: name,
  pipeline: 'p',
  key: `key-${jobId}`,
  attempt: 1,
  retriesUsed: {},
  submittedAt: '2026-01-01T00:00:00.000Z',
});

test('status: how a job that left the queue ended, from captured sacct lines; queued and running jobs from squeue', () => {
  // Captured from `sacct -c -X -P -n -j 1,2,3 -o JobID,State,Reason,NodeList,JobName` on the test
  // cluster (exit 3, scancel, true), plus lines as slurmdbd's sacct writes them for end states
  // the test cluster cannot make without disturbing other jobs.
  const ended = parseJobLines(
    [
      '1|FAILED||localhost|cap-failed',
      '3|COMPLETED||localhost|cap-ok',
      '2|CANCELLED||localhost|cap-cancel',
      '7|TIMEOUT|None|node07|pl-7',
      '8|NODE_FAIL|None|node08|pl-8',
      '9|OUT_OF_MEMORY|None|node07|pl-9',
      '10|PREEMPTED|None|node07|pl-10',
      '11|CANCELLED by 1000|None|None assigned|pl-11',
    ].join('\n'),
  );
  const status = (id: string, name: string) => jobStatus(record(id, name), viewOf(ended, id, name));
  assert.deepEqual(status('1', 'cap-failed'), {
    record: record('1', 'cap-failed'),
    next: { action: 'fail', text: 'the next run reports the stage failed' },
    label: 'ended',
    text: 'Slurm job 1 ended FAILED on localhost; the next run reports the stage failed',
    state: 'FAILED',
    node: 'localhost',
  });
  for (const [id, name, state] of [
    ['3', 'cap-ok', 'COMPLETED'],
    ['2', 'cap-cancel', 'CANCELLED'],
    ['7', 'pl-7', 'TIMEOUT'],
    ['8', 'pl-8', 'NODE_FAIL'],
    ['9', 'pl-9', 'OUT_OF_MEMORY'],
    ['10', 'pl-10', 'PREEMPTED'],
  ]) {
    const s = status(id, name);
    assert.equal(s.label, 'ended');
    assert.equal(s.state, state);
    assert.match(
      s.text,
      new RegExp(`^Slurm job ${id} ended ${state} on (localhost|node0[78]); the next (run reports|Slurm run submits) `),
    );
  }
  assert.equal(status('11', 'pl-11').text, 'Slurm job 11 ended CANCELLED; the next run reports the stage failed');
  // squeue's own answer for a job that has just ended (its reason kept), is queued, or runs.
  const queue = parseSqueue(
    '1|FAILED|NonZeroExitCode|localhost|cap-failed\n4|PENDING|Priority||pl-4\n5|RUNNING|None|node07|pl-5\n' +
      '6|SUSPENDED|None|node07|pl-6\n',
  );
  const fromQueue = (id: string, name: string) => jobStatus(record(id, name), queue.get(id)).text;
  assert.equal(
    fromQueue('1', 'cap-failed'),
    'Slurm job 1 ended FAILED (NonZeroExitCode) on localhost; the next run reports the stage failed',
  );
  assert.equal(fromQueue('4', 'pl-4'), 'Slurm job 4 queued (Priority)');
  assert.equal(fromQueue('5', 'pl-5'), 'Slurm job 5 running on node07');
  assert.equal(fromQueue('6', 'pl-6'), 'Slurm job 6 SUSPENDED on node07', 'a suspended job has not ended');
  assert.equal(
    jobStatus(record('12', 'pl-12'), undefined, undefined, { why: 'no accounting on this cluster', decidable: true })
      .text,
    'Slurm job 12 has left the queue, how it ended is unknown (no accounting on this cluster); the next Slurm ' +
      'run submits it again (the job is no longer known to Slurm and wrote no result) if the profile allows ' +
      'another NODE_FAIL retry (0 used); a local run runs the stage here',
  );
});

test('status: a running job with its progress file reads as the live display describes a report', () => {
  const file = {
    version: 1 as const,
    at: '2026-01-01T00:00:00.000Z',
    elapsedSeconds: 10,
    progress: { fraction: 0.4, message: 'step 400/1000 loss 0.05', rate: 40, unit: 'steps', etaSeconds: 15 },
  };
  const view: QueueView = { jobId: '12', state: 'RUNNING', reason: '', node: 'node07', name: 'pl-12' };
  assert.equal(
    jobStatus(record('12', 'pl-12'), view, { warned: false, progress: file }).text,
    `Slurm job 12 running on node07: ${describeProgress(file.progress)}`,
  );
  assert.equal(describeProgress(file.progress), '40%  step 400/1000 loss 0.05  40.0 steps/s  ETA 15.0s');
});

test('status: jobs squeue has forgotten are asked of sacct, in one query; its end state shows', async () => {
  const work = mkdtempSync(join(tmpdir(), 'status-jobs-'));
  const dirs = new Map<string, string>();
  for (const [id, name] of [
    ['21', 'pl-timeout'],
    ['22', 'pl-running'],
    ['23', 'pl-forgotten'],
  ]) {
    const dir = join(work, id);
    mkdirSync(join(dir, '.slurm'), { recursive: true });
    writeFileSync(join(dir, '.slurm', 'job.json'), JSON.stringify(record(id, name)));
    dirs.set(`key-${id}`, dir);
  }
  await withTools(
    {
      squeue: 'echo "22|RUNNING|None|node07|pl-running"',
      sacct: `echo "$*" >> ${join(work, 'sacct-calls')}\necho "21|TIMEOUT||node07|pl-timeout"`,
    },
    async () => {
      const jobs = await jobsInProgress(dirs);
      assert.deepEqual(
        [...jobs.values()].map((j) => [j.label, j.state, j.text]),
        [
          [
            'ended',
            'TIMEOUT',
            'Slurm job 21 ended TIMEOUT on node07; the next Slurm run submits it again if the profile allows ' +
              'another TIMEOUT retry (0 used); a local run runs the stage here',
          ],
          ['running', 'RUNNING', 'Slurm job 22 running on node07'],
          [
            'ended',
            undefined,
            'Slurm job 23 has left the queue, how it ended is unknown (accounting does not know it); the next ' +
              'Slurm run submits it again (the job is no longer known to Slurm and wrote no result) if the ' +
              'profile allows another NODE_FAIL retry (0 used); a local run runs the stage here',
          ],
        ],
      );
      assert.match(readFileSync(join(work, 'sacct-calls'), 'utf8'), /^-X -P -n -j 21,23 -o /);
    },
  );
});

test('poller: a job watched while an squeue is under way is polled too, even when every job of that poll ends', async () => {
  // squeue takes 0.5 s; job 31 has ended. Job 32 is watched during the query for 31 alone.
  await withTools(
    {
      squeue: 'sleep 0.5\necho "31|COMPLETED|None|n1|pl-31"\necho "32|COMPLETED|None|n1|pl-32"',
      sacct: 'exit 0',
    },
    async () => {
      const poller = new QueuePoller(50, () => {});
      try {
        const first = poller.next('31', 'pl-31', { soon: true });
        await new Promise((r) => setTimeout(r, 300));
        const second = poller.next('32', 'pl-32');
        assert.equal((await first)?.state, 'COMPLETED');
        const late = await Promise.race([second, new Promise((r) => setTimeout(() => r('never polled'), 5000))]);
        assert.equal((late as QueueView | string | undefined) && (late as QueueView).state, 'COMPLETED');
      } finally {
        poller.stop();
      }
    },
  );
});

test('show: a stage whose job has ended says how it ended and what the next run does; a queued one is in progress elsewhere', async () => {
  const pr = makeProject('show-ended-');
  pr.write(
    'pipelines/p.yaml',
    'name: p\nstages:\n' +
      "  timedout:\n    uses: shell\n    heavy: true\n    with: { cmd: 'echo a' }\n" +
      "  waiting:\n    uses: shell\n    heavy: true\n    with: { cmd: 'echo b' }\n",
  );
  const status = JSON.parse((await cli(['status', 'p', '--json'], pr.dir)).stdout) as {
    instances: Array<{ name: string; key: string }>;
  };
  for (const [id, inst] of [
    ['7', 'timedout'],
    ['8', 'waiting'],
  ]) {
    const key = status.instances.find((i) => i.name === inst)!.key;
    pr.write(join('artifacts', 'work', key, '.slurm', 'job.json'), JSON.stringify({ ...record(id, `pl-${id}`), key }));
  }
  await withTools(
    { squeue: 'echo "8|PENDING|Priority||pl-8"', sacct: 'echo "7|TIMEOUT|None|node07|pl-7"' },
    async (bin) => {
      const env = { PATH: `${bin}:${process.env.PATH}` };
      const ended = await cli(['show', 'p', 'timedout'], pr.dir, env);
      assert.equal(ended.code, 1);
      assert.match(
        ended.stderr,
        new RegExp(
          '^timedout is not computed: Slurm job 7 ended TIMEOUT on node07; the next Slurm run submits it again ' +
            'if the profile allows another TIMEOUT retry \\(0 used\\); a local run runs the stage here$',
          'm',
        ),
      );
      assert.doesNotMatch(ended.stderr, /in progress elsewhere/);
      const queued = await cli(['show', 'p', 'waiting'], pr.dir, env);
      assert.match(queued.stderr, /^waiting is not computed: in progress elsewhere, Slurm job 8 queued \(Priority\)$/m);
    },
  );
});

test('states: one table classifies every Slurm state for the runner and status alike; both word a job the same', () => {
  const phases: Record<Phase, string[]> = {
    queued: ['PENDING', 'CONFIGURING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'SPECIAL_EXIT', 'RESV_DEL_HOLD'],
    running: ['RUNNING', 'COMPLETING', 'SUSPENDED', 'STOPPED', 'RESIZING', 'SIGNALING', 'STAGE_OUT'],
    ended: [
      'COMPLETED',
      'FAILED',
      'CANCELLED',
      'TIMEOUT',
      'DEADLINE',
      'NODE_FAIL',
      'BOOT_FAIL',
      'PREEMPTED',
      'OUT_OF_MEMORY',
      'REVOKED',
    ],
  };
  for (const [phase, states] of Object.entries(phases) as Array<[Phase, string[]]>) {
    for (const state of states) {
      const view: QueueView = { jobId: '13', state, reason: 'Priority', node: 'node07', name: 'pl-13' };
      assert.equal(phaseOf(state), phase, state);
      const decision = decide(view, undefined, false);
      const status = jobStatus(record('13', 'pl-13'), view);
      assert.equal(status.label, phase, `${state}: status`);
      if (decision.kind === 'queued' || decision.kind === 'running') {
        assert.equal(decision.kind, phase, `${state}: the runner`);
        assert.equal(jobProgress(decision).message, status.text, `${state}: one wording`);
      } else assert.equal(phase, 'ended', `${state}: the runner`);
    }
  }
  const configuring: QueueView = { jobId: '13', state: 'CONFIGURING', reason: '', node: 'node07', name: 'pl-13' };
  assert.equal(describeJob(configuring), 'Slurm job 13 CONFIGURING on node07');
  assert.equal(
    describeJob({ ...configuring, state: 'PENDING', reason: 'Priority', node: '' }),
    'Slurm job 13 queued (Priority)',
  );
});

test('status: an ended job says what the next run does with it (collect, submit again, report the failure, ask sacct)', () => {
  const r = { ...record('7', 'pl-7'), retriesUsed: { TIMEOUT: 1 } };
  const v = (state: string): QueueView => ({ jobId: '7', state, reason: '', node: 'node07', name: 'pl-7' });
  const ok: ResultFile = { ok: true, outputs: { x: 1 } };
  const failed: ResultFile = { ok: false, message: 'shell command exited with code 3\n  at stage shell' };
  const text = (view: QueueView | undefined, files: JobFiles, decidable = true) =>
    jobStatus(r, view, files, { why: 'sacct did not answer', decidable }).text;
  assert.equal(
    text(v('COMPLETED'), { result: ok, warned: false }),
    'Slurm job 7 ended COMPLETED on node07; the next run collects its outputs',
  );
  assert.equal(
    text(v('TIMEOUT'), { warned: false }),
    'Slurm job 7 ended TIMEOUT on node07; the next Slurm run submits it again if the profile allows another ' +
      'TIMEOUT retry (1 used); a local run runs the stage here',
  );
  assert.equal(
    text(v('FAILED'), { result: failed, warned: true }),
    'Slurm job 7 ended FAILED on node07; the next Slurm run submits it again (stopped at the time-limit warning) ' +
      'if the profile allows another TIMEOUT retry (1 used); a local run runs the stage here',
  );
  assert.equal(
    text(v('FAILED'), { result: failed, warned: false }),
    'Slurm job 7 ended FAILED on node07; the next run reports the stage failed: shell command exited with code 3',
  );
  assert.equal(
    text({ ...v('PENDING'), node: '', reason: 'PartitionTimeLimit' }, { warned: false }),
    'Slurm job 7 queued (PartitionTimeLimit); the next run cancels it and reports the stage failed: Slurm will ' +
      "never start job 7: PartitionTimeLimit (check the profile's partition, time, gpus and account)",
  );
  assert.equal(
    text(undefined, { result: ok, warned: false }, false),
    'Slurm job 7 has left the queue, how it ended is unknown (sacct did not answer); the next run collects its outputs',
  );
  assert.equal(
    text(undefined, { warned: false }, false),
    'Slurm job 7 has left the queue, how it ended is unknown (sacct did not answer); the next run asks sacct ' +
      'again before it decides',
  );
});

/** `status --json`'s word and text for what the next run does with the only instance's job. */
async function nextOfJob(dir: string, env: Record<string, string> = {}) {
  const { job } = JSON.parse((await cli(['status', 'p', '--json'], dir, env)).stdout).instances[0];
  return { next: job.next, nextText: job.nextText };
}

/** A project with one heavy stage, `slow`, and a job record for its entry as a killed Slurm run leaves it. */
async function projectWithJob(prefix: string, jobId: string) {
  const pr = makeProject(prefix);
  pr.write(
    'pipelines/p.yaml',
    `name: p\nstages:\n  slow:\n    uses: shell\n    heavy: true\n    with: { cmd: '${count('slow')}; echo here > $OUT/b.txt', outputs: { b: b.txt } }\n`,
  );
  const status = JSON.parse((await cli(['status', 'p', '--json'], pr.dir)).stdout) as {
    instances: Array<{ name: string; key: string }>;
  };
  const key = status.instances[0].key;
  const jobDir = join(pr.dir, 'artifacts', 'work', key, '.slurm');
  pr.write(
    join('artifacts', 'work', key, '.slurm', 'job.json'),
    JSON.stringify({ ...record(jobId, `pl-${jobId}`), key }),
  );
  const cached = () => readFileSync(join(pr.dir, 'artifacts', 'cache', key, 'out', 'b.txt'), 'utf8');
  return { pr, key, jobDir, recordFile: join(jobDir, 'job.json'), cached };
}

test('local run without squeue: a recorded job is left alone and the entry refused, saying how to go on; its result is collected', async () => {
  const { pr, jobDir, recordFile, cached } = await projectWithJob('no-squeue-', '9');
  // No Slurm command on this PATH (the runner itself needs none).
  const env = { PATH: mkdtempSync(join(tmpdir(), 'empty-path-')) };
  const refusal =
    'Slurm job 9 of an earlier run may still be computing this entry, and squeue is not installed here to tell: ' +
    'run from the cluster (pipeline run --executor slurm adopts the job, scancel 9 cancels it), or, if the job ' +
    `is over, delete its record ${recordFile} to compute the entry here`;
  const r = await cli(['run', 'p', '--progress', 'plain'], pr.dir, env);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(`FAILED slow: ${refusal}`), r.stderr);
  assert.equal(pr.count('slow'), 0, 'the stage did not run beside the job');
  assert.ok(existsSync(recordFile), 'the record is kept');
  const status = await cli(['status', 'p'], pr.dir, env);
  assert.ok(status.stdout.includes(`slow  ${refusal}\n`), status.stdout);
  // The dry run and `status --json` say what the next run does: it refuses the entry.
  assert.ok((await cli(['run', 'p', '--dry-run'], pr.dir, env)).stdout.includes(`refuse     slow: ${refusal}\n`));
  assert.deepEqual(await nextOfJob(pr.dir, env), {
    next: 'refuse',
    nextText: `the next run here refuses the entry: ${refusal}`,
  });

  // The job's own result file says it finished: collected without asking Slurm.
  pr.write(join(jobDir.slice(pr.dir.length + 1), 'out', 'b.txt'), 'from the job\n');
  pr.write(join(jobDir.slice(pr.dir.length + 1), 'result.json'), JSON.stringify({ ok: true, outputs: { b: 'b.txt' } }));
  assert.match((await cli(['status', 'p'], pr.dir, env)).stdout, /Slurm job 9 wrote its result .*collects its outputs/);
  assert.match((await cli(['run', 'p', '--dry-run'], pr.dir, env)).stdout, /^collect {4}slow: Slurm job 9 wrote/m);
  assert.deepEqual(await nextOfJob(pr.dir, env), { next: 'collect', nextText: 'the next run collects its outputs' });
  const done = await cli(['run', 'p', '--progress', 'plain'], pr.dir, env);
  assert.equal(done.code, 0, done.stderr);
  assert.equal(pr.count('slow'), 0);
  assert.equal(cached(), 'from the job\n');
});

test('a job whose result was collected by a run killed before it forgot the record fails once, clearly, then runs again', async () => {
  // What a runner of an earlier version, which moved the job's outputs out, left when killed
  // between that move and removing job.json (runners now link them: see the test below).
  const { pr, jobDir, recordFile } = await projectWithJob('collected-', '13');
  writeFileSync(join(jobDir, 'result.json'), JSON.stringify({ ok: true, outputs: { b: 'b.txt' } }));
  const env = { PATH: mkdtempSync(join(tmpdir(), 'empty-path-')) };
  const r = await cli(['run', 'p', '--progress', 'plain'], pr.dir, env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(
    r.stderr,
    /FAILED slow: Slurm job 13's outputs are no longer in .*\.slurm\/out .*the next run computes the entry again/,
  );
  assert.ok(!existsSync(recordFile), 'forgotten: not collected again by every later run');
  // The shell stage needs this machine's PATH; with no record left, no Slurm command is asked.
  const again = await cli(['run', 'p', '--progress', 'plain'], pr.dir);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(pr.count('slow'), 1);
});

test('local run: a recorded job that ended without outputs is decided as a Slurm run would, but never resubmitted', async () => {
  // TIMEOUT: a Slurm run would submit it again; a local run runs the stage itself.
  const timedOut = await projectWithJob('local-timeout-', '10');
  await withTools({ squeue: 'echo "10|TIMEOUT|None|node07|pl-10"', sbatch: 'echo sbatch >&2; exit 1' }, async () => {
    const { pr } = timedOut;
    assert.match((await cli(['status', 'p'], pr.dir)).stdout, /; a local run runs the stage here\n/);
    // What the run does with it, as the verb says: a local run runs the stage, a Slurm run resubmits.
    const dry = await cli(['run', 'p', '--dry-run'], pr.dir);
    assert.match(dry.stdout, /^would run {2}slow: Slurm job 10 ended TIMEOUT on node07; the next Slurm run .*here$/m);
    const slurmDry = await cli(['run', 'p', '--dry-run', '--executor', 'slurm'], pr.dir);
    assert.match(slurmDry.stdout, /^resubmit {3}slow: Slurm job 10 ended TIMEOUT/m);
    assert.deepEqual(await nextOfJob(pr.dir), {
      next: 'resubmit',
      nextText:
        'the next Slurm run submits it again if the profile allows another TIMEOUT retry (0 used); a local run ' +
        'runs the stage here',
    });
    const r = await cli(['run', 'p', '--progress', 'plain'], pr.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /slow: job 10 reached its time limit: running the stage here/);
    assert.equal(pr.count('slow'), 1);
    assert.equal(timedOut.cached(), 'here\n');
    assert.ok(!existsSync(timedOut.recordFile));
  });
  // The same in a Slurm run, for a stage its profile keeps on the submitting machine.
  const kept = await projectWithJob('slurm-local-stage-', '12');
  kept.pr.write('slurm.yaml', 'local: [slow]\n');
  await withTools({ squeue: 'echo "12|TIMEOUT|None|node07|pl-12"', sbatch: 'exit 0' }, async () => {
    const { pr } = kept;
    const r = await cli(['run', 'p', '--executor', 'slurm', '--profile', join(pr.dir, 'slurm.yaml')], pr.dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /slow: job 12 reached its time limit: running the stage here/);
    assert.equal(pr.count('slow'), 1);
  });
  // A stage that failed in its job: the failure is reported (as status said), then forgotten.
  const failed = await projectWithJob('local-failed-', '11');
  writeFileSync(join(failed.jobDir, 'result.json'), JSON.stringify({ ok: false, message: 'boom' }));
  await withTools({ squeue: 'echo "11|FAILED|NonZeroExitCode|node07|pl-11"' }, async () => {
    const { pr } = failed;
    assert.match((await cli(['status', 'p'], pr.dir)).stdout, /the next run reports the stage failed: boom\n/);
    assert.match((await cli(['run', 'p', '--dry-run'], pr.dir)).stdout, /^fail {7}slow: Slurm job 11 ended FAILED/m);
    const r = await cli(['run', 'p', '--progress', 'plain'], pr.dir);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /FAILED slow: boom/);
    assert.equal(pr.count('slow'), 0);
    const again = await cli(['run', 'p', '--progress', 'plain'], pr.dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(pr.count('slow'), 1);
  });
});

for (const executor of ['local', 'slurm']) {
  test(`a ${executor} runner killed after collecting a finished job's outputs, before it committed them: the next run collects them again`, {
    timeout: 120_000,
  }, async () => {
    const { pr, key, jobDir, recordFile, cached } = await projectWithJob('collect-kill-', '14');
    writeFileSync(join(jobDir, 'result.json'), JSON.stringify({ ok: true, outputs: { b: 'b.txt' } }));
    mkdirSync(join(jobDir, 'out'));
    writeFileSync(join(jobDir, 'out', 'b.txt'), 'from the job\n');
    // A large (sparse) file the runner takes a moment to digest: the window between the collect
    // and the commit in which the kill falls.
    writeFileSync(join(jobDir, 'out', 'big.bin'), '');
    truncateSync(join(jobDir, 'out', 'big.bin'), 256 << 20);
    const tools = { squeue: 'echo "14|COMPLETED|None|node07|pl-14"', sacct: 'exit 0', sbatch: 'exit 0' };
    const args = ['run', 'p', '--progress', 'plain', '--executor', executor];
    await withTools(tools, async () => {
      const run = startCli(args, pr.dir);
      const tmp = join(pr.dir, 'artifacts', 'tmp');
      const collected = () =>
        existsSync(tmp) && readdirSync(tmp).some((d) => existsSync(join(tmp, d, 'out', 'big.bin')));
      await waitFor(collected, 60_000);
      run.child.kill('SIGSTOP');
      assert.ok(!existsSync(join(pr.dir, 'artifacts', 'cache', key)), 'killed before the commit');
      run.child.kill('SIGKILL');
      await run.done;
      assert.ok(existsSync(recordFile), 'the job is still recorded');
      const again = await cli(args, pr.dir);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /slow: adopting Slurm job 14/);
      assert.equal(pr.count('slow'), 0, 'the stage was not computed again');
      assert.equal(cached(), 'from the job\n');
      assert.ok(!existsSync(jobDir), "the job's folder is removed once its outputs are in the cache");
    });
  });
}

/**
 * squeue as a controller that never answers: one that fails at once, or one that hangs (a
 * wrapper script whose `sleep` holds the pipes: the query must be killed with its children).
 * Each call appends its first argument to `calls`, a hung sleep's pid to `pids`; `--version`
 * answers either way (the command is installed).
 */
function silentSqueue(how: 'failing' | 'hanging', calls: string, pids: string): string {
  const query =
    how === 'failing'
      ? 'echo "slurm_load_jobs error: Unable to contact slurm controller (connect failure)" >&2; exit 1'
      : `sleep 3600 &\necho $! >> ${pids}\nwait $!`;
  return `echo "$1" >> ${calls}\n[ "$1" = --version ] && { echo "slurm 23.02.1"; exit 0; }\n${query}`;
}

const queries = (calls: string) =>
  readFileSync(calls, 'utf8')
    .split('\n')
    .filter((l) => l && l !== '--version').length;

const lastError = (how: string) => (how === 'failing' ? 'Unable to contact' : 'no answer within 1 s');

test('poller: while squeue fails, the watched job shows it (failures in a row, the last error); after 5 the wait ends', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'poller-failing-'));
  await withTools({ squeue: silentSqueue('failing', join(dir, 'calls'), join(dir, 'pids')) }, async () => {
    const notes: string[] = [];
    const poller = new QueuePoller(20, (line) => notes.push(line));
    const shown: string[] = [];
    const stillWaiting = new Promise((r) => setTimeout(() => r('still waiting after 30 s'), 30_000).unref());
    try {
      const end = watchJob(
        poller,
        record('41', 'pl-41'),
        dir,
        (p) => shown.push(p.message ?? ''),
        new AbortController().signal,
      );
      const ended = await Promise.race([end.catch((e: unknown) => e), stillWaiting]);
      assert.ok(ended instanceof QueryUnanswered, String(ended));
      assert.equal(ended.tries, 5);
    } finally {
      poller.stop();
    }
    assert.deepEqual(
      shown,
      [1, 2, 3, 4].map(
        (n) =>
          `Slurm job 41: squeue failed ${n} time${n > 1 ? 's' : ''} in a row (the last: slurm_load_jobs error: Unable ` +
          'to contact slurm controller (connect failure)): asking again, giving up after 5',
      ),
    );
    assert.equal(queries(join(dir, 'calls')), 5);
    assert.match(notes[0], /^squeue failed \(slurm_load_jobs error: Unable to contact .*\): asking again/);
  });
});

test('an squeue that never answers (failing, or hanging past query_timeout) ends the wait after 5 queries, the job left for the next run', {
  timeout: 240_000,
}, async () => {
  for (const executor of ['local', 'slurm'] as const) {
    for (const how of ['failing', 'hanging'] as const) {
      // A local run adopts a dead run's job (15); a Slurm run submits its own (77).
      const jobId = executor === 'local' ? '15' : '77';
      const { pr, jobDir, recordFile, cached } = await projectWithJob(`squeue-${executor}-${how}-`, '15');
      if (executor === 'slurm') rmSync(jobDir, { recursive: true });
      const profile = pr.write('slurm.yaml', 'poll_interval: 0.05\nquery_timeout: 1\n');
      const calls = join(pr.dir, 'squeue-calls');
      const pids = join(pr.dir, 'squeue-pids');
      const sbatchCalls = join(pr.dir, 'sbatch-calls');
      const sbatch = `[ "$1" = --version ] && { echo "slurm 23.02.1"; exit 0; }\necho "$*" >> ${sbatchCalls}\necho 77`;
      const args = ['run', 'p', '--progress', 'plain', '--executor', executor, '--profile', profile];
      await withTools({ squeue: silentSqueue(how, calls, pids), sacct: 'exit 0', sbatch }, async () => {
        const run = startCli(args, pr.dir);
        const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
        const r = await run.done;
        clearTimeout(timer);
        const what = `${executor} run, squeue ${how}`;
        assert.notEqual(r.signal, 'SIGKILL', `${what}: still waiting after 60 s:\n${r.stderr}`);
        assert.equal(r.code, 1, `${what}: ${r.stderr}`);
        const failures = `5 queries failed in a row, the last: [^\\n]*${lastError(how)}[^\\n]*`;
        const why =
          executor === 'local'
            ? 'FAILED slow: Slurm job 15 of an earlier run may still be computing this entry, and squeue does not ' +
              `answer here to tell \\(${failures}\\): run from the cluster \\(pipeline run --executor slurm adopts ` +
              'the job, scancel 15 cancels it\\)'
            : `FAILED slow: Slurm job 77 may still be queued or running, but squeue does not answer \\(${failures}\\): ` +
              'the run stopped waiting for it; squeue -j 77 tells whether it still runs, scancel 77 cancels it, and ' +
              'the next run adopts it';
        assert.match(r.stderr, new RegExp(why), what);
        assert.equal(queries(calls), 5, `${what}: squeue queries`);
        if (how === 'hanging')
          for (const pid of readFileSync(pids, 'utf8').trim().split('\n'))
            assert.ok(!alive(Number(pid)), `${what}: the hung query's children were killed too`);
        assert.equal(pr.count('slow'), 0, `${what}: the stage did not run beside the job`);
        const kept = JSON.parse(readFileSync(recordFile, 'utf8')) as JobRecord;
        assert.equal(kept.jobId, jobId, `${what}: the record is kept`);

        // The job finishes; squeue answers again: the next run adopts the job and collects its
        // outputs, without submitting it again.
        writeFileSync(join(jobDir, 'result.json'), JSON.stringify({ ok: true, outputs: { b: 'b.txt' } }));
        mkdirSync(join(jobDir, 'out'), { recursive: true });
        writeFileSync(join(jobDir, 'out', 'b.txt'), 'from the job\n');
        writeFileSync(join(pr.dir, 'squeue-answer'), `${jobId}|COMPLETED|None|node07|${kept.name}\n`);
      });
      await withTools({ squeue: `cat ${join(pr.dir, 'squeue-answer')}`, sacct: 'exit 0', sbatch }, async () => {
        const again = await cli(args, pr.dir);
        assert.equal(again.code, 0, again.stderr);
        assert.match(again.stderr, new RegExp(`slow: adopting Slurm job ${jobId}`));
        assert.equal(pr.count('slow'), 0);
        assert.equal(cached(), 'from the job\n');
      });
      const submitted = existsSync(sbatchCalls) ? readFileSync(sbatchCalls, 'utf8').trim().split('\n').length : 0;
      assert.equal(submitted, executor === 'slurm' ? 1 : 0, `${executor} run, squeue ${how}: submitted once at most`);
    }
  }
});

test('poller: after squeue failed 5 times in a row, a job watched later gets its own 5 tries, not none', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'poller-episode-'));
  await withTools({ squeue: silentSqueue('failing', join(dir, 'calls'), join(dir, 'pids')) }, async () => {
    const poller = new QueuePoller(20, () => {});
    const stillWaiting = new Promise((r) => setTimeout(() => r('still waiting after 30 s'), 30_000).unref());
    const wait = async (jobId: string, shown: string[]) =>
      Promise.race([
        watchJob(
          poller,
          record(jobId, `pl-${jobId}`),
          dir,
          (p) => shown.push(p.message ?? ''),
          new AbortController().signal,
        ).catch((e: unknown) => e),
        stillWaiting,
      ]);
    try {
      const first = await wait('43', []);
      assert.ok(first instanceof QueryUnanswered, String(first));
      // Submitted after the first wait gave up (its sbatch answered): a fresh allowance of 5.
      const shown: string[] = [];
      const later = await wait('44', shown);
      assert.ok(later instanceof QueryUnanswered, String(later));
      assert.equal(later.tries, 5);
      assert.deepEqual(
        shown.map((m) => m.replace(/ \(the last: .*\)/, '')),
        [1, 2, 3, 4].map(
          (n) => `Slurm job 44: squeue failed ${n} time${n > 1 ? 's' : ''} in a row: asking again, giving up after 5`,
        ),
      );
    } finally {
      poller.stop();
    }
    assert.equal(queries(join(dir, 'calls')), 10);
  });
});

test('poller: while sacct fails, a job that left the queue with a result file is collected; one without fails after 5, saying so', {
  timeout: 60_000,
}, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'poller-sacct-'));
  const finished = join(dir, 'finished');
  mkdirSync(finished);
  writeFileSync(join(finished, 'result.json'), JSON.stringify({ ok: true, outputs: { b: 'b.txt' } }));
  const calls = join(dir, 'sacct-calls');
  const sacct = `echo "$*" >> ${calls}\necho "sacct: error: Problem talking to the database: Connection refused" >&2; exit 1`;
  // squeue lists neither job any more (it has forgotten them): only sacct could tell how they ended.
  await withTools({ squeue: 'exit 0', sacct }, async () => {
    const poller = new QueuePoller(20, () => {});
    const stillWaiting = new Promise((r) => setTimeout(() => r('still waiting after 30 s'), 30_000).unref());
    const shown: string[] = [];
    const signal = new AbortController().signal;
    try {
      const collected = watchJob(poller, record('45', 'pl-45'), finished, () => {}, signal);
      const lost = watchJob(poller, record('46', 'pl-46'), dir, (p) => shown.push(p.message ?? ''), signal);
      assert.deepEqual(await Promise.race([collected, stillWaiting]), { kind: 'done', outputs: { b: 'b.txt' } });
      const ended = await Promise.race([lost.catch((e: unknown) => e), stillWaiting]);
      assert.ok(ended instanceof Error && !(ended instanceof QueryUnanswered), String(ended));
      assert.equal(
        ended.message,
        'Slurm job 46 has left the queue without writing a result, and sacct does not answer to tell how it ended ' +
          '(5 queries failed in a row, the last: sacct: error: Problem talking to the database: Connection refused): ' +
          'sacct -j 46 tells how it ended; the next run asks sacct again',
      );
    } finally {
      poller.stop();
    }
    assert.deepEqual(
      shown.map((m) => m.replace(/ \(the last: .*\)/, '')),
      [1, 2, 3, 4].map(
        (n) => `Slurm job 46: sacct failed ${n} time${n > 1 ? 's' : ''} in a row: asking again, giving up after 5`,
      ),
    );
    assert.equal(readFileSync(calls, 'utf8').trim().split('\n').length, 5);
  });
});

test('a Slurm run whose job left the queue while sacct fails: collected by its result file, else failed after 5 queries, the record kept', {
  timeout: 120_000,
}, async () => {
  for (const wroteResult of [true, false]) {
    const { pr, recordFile, cached } = await projectWithJob(`sacct-failing-${wroteResult}-`, '78');
    rmSync(dirname(recordFile), { recursive: true });
    const profile = pr.write('slurm.yaml', 'poll_interval: 0.05\nquery_timeout: 1\n');
    // The job ends at once (squeue has already forgotten it), writing its outputs and result or not.
    const finish =
      'd=$(dirname "$2")\necho "from the job" > $d/out/b.txt\necho \'{"ok":true,"outputs":{"b":"b.txt"}}\' > $d/result.json';
    const sbatch = `[ "$1" = --version ] && exit 0\n${wroteResult ? finish : ''}\necho 78`;
    const sacctCalls = join(pr.dir, 'sacct-calls');
    const sacct = `echo "$*" >> ${sacctCalls}\necho "sacct: error: Problem talking to the database: Connection refused" >&2; exit 1`;
    await withTools({ squeue: 'exit 0', sacct, sbatch }, async () => {
      const run = startCli(['run', 'p', '--progress', 'plain', '--executor', 'slurm', '--profile', profile], pr.dir);
      const timer = setTimeout(() => run.child.kill('SIGKILL'), 60_000);
      const r = await run.done;
      clearTimeout(timer);
      assert.notEqual(r.signal, 'SIGKILL', `still waiting after 60 s:\n${r.stderr}`);
      if (wroteResult) {
        assert.equal(r.code, 0, r.stderr);
        assert.equal(cached(), 'from the job\n');
        return;
      }
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /FAILED slow: Slurm job 78 has left the queue without writing a result, and sacct does not answer to tell how it ended \(5 queries failed in a row, the last: sacct: error: Problem talking to the database: Connection refused\): sacct -j 78 tells how it ended; the next run asks sacct again/,
      );
      assert.equal(readFileSync(sacctCalls, 'utf8').trim().split('\n').length, 5);
      assert.equal((JSON.parse(readFileSync(recordFile, 'utf8')) as JobRecord).jobId, '78', 'the record is kept');
    });
  }
});

test("status, show and a dry run ask Slurm with the profile's query_timeout (--profile or $PIPELINE_SLURM_PROFILE), as a run does", {
  timeout: 120_000,
}, async () => {
  const { pr } = await projectWithJob('status-timeout-', '16');
  const profile = pr.write('slurm.yaml', 'query_timeout: 1\n');
  const calls = join(pr.dir, 'squeue-calls');
  const pids = join(pr.dir, 'squeue-pids');
  await withTools({ squeue: silentSqueue('hanging', calls, pids) }, async () => {
    const hung = 'Slurm job 16 (squeue: killed by SIGKILL (no answer within 1 s));';
    const status = await cli(['status', 'p', '--profile', profile], pr.dir);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(status.stdout.includes(hung), status.stdout);
    const show = await cli(['show', 'p', 'slow'], pr.dir, { PIPELINE_SLURM_PROFILE: profile });
    assert.ok(show.stderr.includes(`slow is not computed: ${hung}`), show.stderr);
    const dry = await cli(['run', 'p', '--dry-run', '--profile', profile], pr.dir);
    assert.ok(dry.stdout.includes(hung), dry.stdout);
    for (const pid of readFileSync(pids, 'utf8').trim().split('\n')) assert.ok(!alive(Number(pid)));
  });
});
