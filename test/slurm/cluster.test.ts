/**
 * The Slurm executor against a real single-node cluster (scripts/slurm-cluster.sh, started by
 * .ci/run; two fake GPUs). Skipped, with the reason, where no cluster answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cli, count, makeProject, startCli, waitFor, type Project } from '../runtime/helpers.js';

const sinfo = spawnSync('sinfo', ['-h', '-N', '-o', '%t'], { encoding: 'utf8' });
const up = sinfo.status === 0 && /^(idle|mix|alloc)/m.test(sinfo.stdout);
const skip = up ? false : `no Slurm cluster answers (${sinfo.error ? 'sinfo not installed' : sinfo.stderr.trim() || sinfo.stdout.trim()}): start one with scripts/slurm-cluster.sh start`;

/** Ids of the jobs a project's runs have recorded (and not yet collected). */
function recordedJobs(pr: Project): string[] {
  const work = join(pr.dir, 'artifacts', 'work');
  if (!existsSync(work)) return [];
  return readdirSync(work)
    .map((k) => join(work, k, '.slurm', 'job.json'))
    .filter(existsSync)
    .map((f) => (JSON.parse(readFileSync(f, 'utf8')) as { jobId: string }).jobId);
}

function stateOf(id: string): string {
  return spawnSync('squeue', ['-h', '-t', 'all', '-j', id, '-o', '%T'], { encoding: 'utf8' }).stdout.trim();
}

function profile(pr: Project, extra = ''): string {
  return pr.write('slurm.yaml', `poll_interval: 0.3\nwarning_seconds: 0\n${extra}`);
}

const slurm = (pr: Project, args: string[] = [], prof = 'slurm.yaml') => ['--executor', 'slurm', '--profile', join(pr.dir, prof), '--progress', 'plain', ...args];

function lockKeys(pr: Project, name = 'p'): Record<string, { key: string; outputs: string }> {
  const lock = JSON.parse(readFileSync(join(pr.pipelines, `${name}.lock.json`), 'utf8')) as { instances: Record<string, { key: string; outputs: string }> };
  return Object.fromEntries(Object.entries(lock.instances).map(([n, e]) => [n, { key: e.key, outputs: e.outputs }]));
}

test('a GPU stage sees CUDA_VISIBLE_DEVICES, a failing stage fails alone, a cached re-run submits nothing; keys as a local run', { skip }, async () => {
  const text = `name: p
stages:
  gpu:
    uses: shell
    heavy: true
    resources: { gpu: 1 }
    matrix: { n: [1, 2] }
    with: { cmd: '${count('gpu')}; echo "$CUDA_VISIBLE_DEVICES" > $OUT/cvd.txt; echo "\${SLURM_JOB_ID:-none}" > $OUT/job.txt', outputs: { cvd: cvd.txt, job: job.txt }, env: { N: \${{ matrix.n }} } }
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
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED broken: .*code 3/);
  assert.match(r.stderr, /skipped after/);
  assert.equal(pr.count('gpu'), 2);
  const entries = readdirSync(join(pr.dir, 'artifacts', 'cache'));
  const cvds = entries.map((k) => join(pr.dir, 'artifacts', 'cache', k, 'out', 'cvd.txt')).filter(existsSync).map((f) => readFileSync(f, 'utf8').trim());
  assert.equal(cvds.length, 2, 'two GPU results');
  for (const c of cvds) assert.match(c, /^[01]$/, 'one fake GPU per job');
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

test('bad requests are errors with Slurm\'s reason: too many GPUs, a time limit the partition never grants', { skip }, async () => {
  const pr = makeProject('slurm-bad-');
  pr.write('pipelines/p.yaml', `name: p
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
`);
  profile(pr, 'stages:\n  long: { partition: short, time: "10" }\n');
  const r = await cli(['run', 'p', ...slurm(pr)], pr.dir);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /FAILED greedy: sbatch refused the job: .*(Requested node configuration is not available|gres)/i);
  const never = /FAILED long: Slurm will never start job (\d+): Partition(TimeLimit|Config)/.exec(r.stderr);
  assert.ok(never, r.stderr);
  assert.equal(stateOf(never[1]), 'CANCELLED', 'the job that could never start is not left in the queue');
});

test('Ctrl-C cancels running and pending jobs in one go and exits 130', { skip }, async (t) => {
  const pr = makeProject('slurm-int-');
  pr.write('pipelines/p.yaml', `name: p
stages:
  hog:
    uses: shell
    heavy: true
    resources: { gpu: 2 }
    matrix: { i: [1, 2, 3] }
    with: { cmd: 'sleep 300', env: { I: \${{ matrix.i }} } }
`);
  profile(pr);
  const run = startCli(['run', 'p', ...slurm(pr)], pr.dir);
  t.after(() => run.child.kill('SIGKILL'));
  let ids: string[] = [];
  await waitFor(() => (ids = recordedJobs(pr)).length === 3, 20_000);
  await waitFor(() => {
    const states = ids.map((id) => stateOf(id));
    return states.filter((s) => s === 'RUNNING').length === 1 && states.filter((s) => s === 'PENDING').length === 2;
  }, 20_000);
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  await waitFor(() => ids.every((id) => stateOf(id) === 'CANCELLED'), 15_000);
  assert.deepEqual(recordedJobs(pr), [], 'no job left for a later run to adopt');
});
