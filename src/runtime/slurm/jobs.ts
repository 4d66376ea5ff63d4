/**
 * Jobs of a run in progress elsewhere, for `pipeline status` and `show`: the job records in
 * the instances' work folders, with one squeue query for all of them.
 */
import { spawnSync } from 'node:child_process';
import { jobDirOf, progressFileOf, readJobRecord, type JobRecord } from './executor.js';
import { readProgressFile } from '../progress-file.js';
import { formatDuration } from '../format.js';
import { parseSqueue, SQUEUE_FORMAT } from './state.js';

export interface JobInProgress {
  record: JobRecord;
  /** queued / running / ended (no runner collected it yet) / unknown (squeue did not answer). */
  label: 'queued' | 'running' | 'ended' | 'unknown';
  /** "Slurm job 12 on node07", "Slurm job 13 queued (Priority)". */
  text: string;
  state?: string;
  node?: string;
  reason?: string;
}

/** The recorded jobs of the given work folders (by cache key), as Slurm sees them now. */
export function jobsInProgress(workDirs: Map<string, string>): Map<string, JobInProgress> {
  const records = new Map<string, JobRecord>();
  for (const [key, dir] of workDirs) {
    const r = readJobRecord(dir);
    if (r && r.key === key) records.set(key, r);
  }
  const out = new Map<string, JobInProgress>();
  if (!records.size) return out;
  const ids = [...records.values()].map((r) => r.jobId);
  const q = spawnSync('squeue', ['-h', '-t', 'all', '-j', ids.join(','), '-o', SQUEUE_FORMAT], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const answered = q.status === 0 || /Invalid job id/i.test(q.stderr ?? '');
  const views = answered ? parseSqueue(q.stdout ?? '') : new Map();
  for (const [key, r] of records) {
    const job = `Slurm job ${r.jobId}`;
    if (!answered) {
      out.set(key, {
        record: r,
        label: 'unknown',
        text: `${job} (squeue: ${(q.stderr || q.error?.message || 'no answer').trim()})`,
      });
      continue;
    }
    const v = views.get(r.jobId);
    if (!v || v.name !== r.name)
      out.set(key, { record: r, label: 'ended', text: `${job} ended; the next run collects it` });
    else if (v.state === 'PENDING')
      out.set(key, {
        record: r,
        label: 'queued',
        text: `${job} queued${v.reason ? ` (${v.reason})` : ''}`,
        state: v.state,
        reason: v.reason,
      });
    else if (v.state === 'RUNNING' || v.state === 'COMPLETING' || v.state === 'CONFIGURING')
      out.set(key, {
        record: r,
        label: 'running',
        text: `${job} running on ${v.node}${progressText(workDirs.get(key)!)}`,
        state: v.state,
        node: v.node,
      });
    else
      out.set(key, { record: r, label: 'ended', text: `${job} ${v.state}; the next run collects it`, state: v.state });
  }
  return out;
}

/** ": 40% step 400/1000 loss 0.05 ETA 3m" from the job's progress file, or nothing. */
function progressText(workDir: string): string {
  const p = readProgressFile(progressFileOf(jobDirOf(workDir)))?.progress;
  if (!p) return '';
  const parts = [
    p.fraction !== undefined ? `${Math.round(p.fraction * 100)}%` : '',
    p.message ?? '',
    p.etaSeconds !== undefined ? `ETA ${formatDuration(p.etaSeconds * 1000)}` : '',
  ].filter(Boolean);
  return parts.length ? `: ${parts.join(' ')}` : '';
}
