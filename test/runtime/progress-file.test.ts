/**
 * The progress file of a batch job: written at once, then at most once per interval (the last
 * report counts), read back validated; and how the runner shows a running job with it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { progressFileWriter, readProgressFile } from '../../src/runtime/progress-file.js';
import { jobProgress } from '../../src/runtime/slurm/watch.js';
import type { QueueView } from '../../src/runtime/slurm/state.js';

test('progress file: the first report at once, later ones held back until the interval ends or close', () => {
  const dir = mkdtempSync(join(tmpdir(), 'progress-file-'));
  const file = join(dir, 'progress.json');
  assert.equal(readProgressFile(file), undefined, 'no file yet');
  const writer = progressFileWriter(file, 3_600_000);
  writer.report({ fraction: 0.25, message: 'step 25/100', rate: 12.5, unit: 'steps' });
  const first = readProgressFile(file);
  assert.equal(first?.version, 1);
  assert.deepEqual(
    { ...first!.progress, etaSeconds: undefined },
    {
      fraction: 0.25,
      message: 'step 25/100',
      rate: 12.5,
      unit: 'steps',
      etaSeconds: undefined,
    },
  );
  assert.ok(first!.progress.etaSeconds! >= 0, "an ETA from the job's elapsed time");
  writer.report({ fraction: 0.5, message: 'step 50/100' });
  writer.report({ fraction: 0.75, message: 'step 75/100', etaSeconds: 30 });
  assert.equal(readProgressFile(file)?.progress.message, 'step 25/100', 'held back within the interval');
  writer.close();
  assert.deepEqual(readProgressFile(file)?.progress, { fraction: 0.75, message: 'step 75/100', etaSeconds: 30 });
  assert.deepEqual(readdirSync(dir), ['progress.json'], 'no temporary file left');
});

test('progress file: no ETA extrapolated from a fraction too small to tell (0.05%)', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'progress-file-')), 'progress.json');
  const writer = progressFileWriter(file, 3_600_000);
  writer.report({ fraction: 0.0005, message: 'step 1/2000' });
  writer.close();
  assert.deepEqual(readProgressFile(file)?.progress, { fraction: 0.0005, message: 'step 1/2000' });
});

test('progress file: a file of another form is no progress', () => {
  const dir = mkdtempSync(join(tmpdir(), 'progress-file-'));
  const file = join(dir, 'progress.json');
  writeFileSync(file, '{"version":1,"at":"x","elapsedSeconds":1,"progress":{"fraction":7}}');
  assert.equal(readProgressFile(file), undefined);
  writeFileSync(file, '{"version":1,');
  assert.equal(readProgressFile(file), undefined);
});

test("a running job is shown with its stage's progress and where it runs; a queued one without a report", () => {
  const view = (state: string, node = 'node07'): QueueView => ({ jobId: '12', state, reason: '', node, name: 'pl-12' });
  const running = { kind: 'running' as const, view: view('RUNNING') };
  assert.deepEqual(jobProgress(running, undefined), { message: 'Slurm job 12 running on node07' });
  const file = {
    version: 1 as const,
    at: '2026-01-01T00:00:00.000Z',
    elapsedSeconds: 10,
    progress: { fraction: 0.4, message: 'step 400/1000 loss 0.05', etaSeconds: 15 },
  };
  assert.deepEqual(jobProgress(running, file), {
    fraction: 0.4,
    message: 'step 400/1000 loss 0.05 (Slurm job 12 running on node07)',
    etaSeconds: 15,
  });
  const suspended = { kind: 'running' as const, view: view('SUSPENDED') };
  assert.equal(jobProgress(suspended, file).message, 'step 400/1000 loss 0.05 (Slurm job 12 SUSPENDED on node07)');
  // A requeued job's progress file is its earlier start's: not shown while it waits.
  const requeued = { kind: 'queued' as const, view: view('REQUEUED', '') };
  assert.deepEqual(jobProgress(requeued, file), { message: 'Slurm job 12 REQUEUED' });
});
