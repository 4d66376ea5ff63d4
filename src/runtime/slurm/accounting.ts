/**
 * End states of jobs that have left the queue. squeue forgets a job MinJobAge seconds after it
 * ended (300 by default, less on busy clusters); a job that ended while no runner watched, or
 * between two polls on such a cluster, is then known only to accounting. Without it a job
 * stopped by its time limit or a preemption (its stage wrote "interrupted") would look like a
 * stage that failed, and a job killed with its node like one that vanished.
 */
import { nextSource, parseJobLines, SACCT_FIELDS, type AccountingSource, type QueueView } from './state.js';
import { QUERY_TIMEOUT_S } from './query.js';
import { runTool } from './tool.js';

export class Accounting {
  private source: AccountingSource = 'sacct';
  private failures = 0;

  constructor(
    private note: (line: string) => void,
    /** How long one sacct query may take (profile query_timeout). */
    private timeoutMs = QUERY_TIMEOUT_S * 1000,
  ) {}

  /** False once both sources said they are disabled: no end state will ever come. */
  get available(): boolean {
    return this.source !== 'none';
  }

  /**
   * One sacct query for all the given jobs: their views (as many as accounting knows), [] when
   * the cluster has no accounting, or why sacct did not answer (ask again later).
   */
  async endStates(jobIds: string[]): Promise<QueueView[] | { error: string }> {
    while (jobIds.length && this.source !== 'none') {
      const completionLog = this.source === 'sacct -c' ? ['-c'] : [];
      const a = await runTool(
        'sacct',
        [...completionLog, '-X', '-P', '-n', '-j', jobIds.join(','), '-o', SACCT_FIELDS],
        { timeoutMs: this.timeoutMs },
      );
      if (a.code === 0) {
        this.failures = 0;
        return parseJobLines(a.stdout);
      }
      const next = a.code === 127 ? 'none' : nextSource(this.source, a.stderr);
      if (next) {
        this.source = next;
        if (next === 'none')
          this.note(
            `no Slurm accounting (${a.stderr.trim()}): a job that has left the queue is judged by its result file alone`,
          );
        continue;
      }
      const error = a.stderr.trim() || `exit ${a.code}`;
      if (++this.failures === 1 || this.failures % 10 === 0) this.note(`sacct failed (${error}): asking again`);
      return { error };
    }
    return [];
  }
}
