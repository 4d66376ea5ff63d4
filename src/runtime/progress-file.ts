/**
 * A stage's progress as a file: how a batch job, which has no channel to its runner, tells it
 * how far the stage has come. `pipeline exec --progress-file FILE` writes the latest report
 * atomically (readers see a whole file or the previous one), at most once per interval, and
 * the runner reads it at each poll of the job's state.
 */
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { Progress } from '../util/progress.js';
import { etaSeconds } from './progress.js';
import { validator } from './validate.js';

const ProgressSchema = Type.Object({
  fraction: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
  message: Type.Optional(Type.String()),
  rate: Type.Optional(Type.Number()),
  unit: Type.Optional(Type.String()),
  etaSeconds: Type.Optional(Type.Number({ minimum: 0 })),
});

export const ProgressFileSchema = Type.Object({
  version: Type.Literal(1),
  /** When the stage reported it (ISO time, the job's clock). */
  at: Type.String(),
  /** Seconds since the stage started in this job. */
  elapsedSeconds: Type.Number({ minimum: 0 }),
  /** The report, with an ETA from the job's own elapsed time when the stage gave none. */
  progress: ProgressSchema,
});

export type ProgressFile = Static<typeof ProgressFileSchema>;

/** Seconds between two writes: a shared filesystem is not a message bus. */
export const PROGRESS_FILE_INTERVAL_MS = 5000;

export interface ProgressFileWriter {
  report(p: Progress): void;
  /** Writes a pending report now and stops the timer. */
  close(): void;
}

/**
 * A writer that writes the first report at once, then at most one per interval: a report that
 * comes too soon waits for the interval's end, replaced by any later one (the last one counts).
 */
export function progressFileWriter(file: string, intervalMs = PROGRESS_FILE_INTERVAL_MS): ProgressFileWriter {
  const started = Date.now();
  let lastWrite = 0;
  let pending: Progress | undefined;
  let timer: NodeJS.Timeout | undefined;
  const write = (p: Progress) => {
    pending = undefined;
    lastWrite = Date.now();
    const elapsedSeconds = (lastWrite - started) / 1000;
    const eta = etaSeconds(p, elapsedSeconds);
    const record: ProgressFile = {
      version: 1,
      at: new Date(lastWrite).toISOString(),
      elapsedSeconds,
      progress: { ...p, ...(eta !== undefined ? { etaSeconds: eta } : {}) },
    };
    try {
      writeFileAtomic(file, JSON.stringify(record));
    } catch {
      /* progress is a courtesy: a full disk must not fail the stage */
    }
  };
  return {
    report(p) {
      const wait = lastWrite + intervalMs - Date.now();
      if (wait <= 0) return write(p);
      pending = p;
      timer ??= setTimeout(() => {
        timer = undefined;
        if (pending) write(pending);
      }, wait);
      timer.unref();
    },
    close() {
      clearTimeout(timer);
      timer = undefined;
      if (pending) write(pending);
    },
  };
}

/** The latest report in a progress file; undefined when there is none yet, or not a valid one. */
export function readProgressFile(file: string): ProgressFile | undefined {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
  return validator(ProgressFileSchema)(data) ? (data as ProgressFile) : undefined;
}
