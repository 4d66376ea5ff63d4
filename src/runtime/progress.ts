/**
 * What a run prints. On a terminal: finished lines scroll above a live region with one line
 * per running stage (bar, fraction, message, rate, ETA, elapsed), redrawn at most 10 times a
 * second. Without a terminal (CI, files): plain timestamped lines, progress at most once per
 * stage every few seconds, plus start/finish lines with durations.
 */
import { formatDuration } from './format.js';
import type { Progress } from '../util/progress.js';

export interface Reporter {
  started(instance: string): void;
  progress(instance: string, p: Progress): void;
  finished(
    instance: string,
    status: 'ran' | 'cached' | 'failed' | 'skipped' | 'interrupted',
    detail?: string,
    durationMs?: number,
  ): void;
  /** A line outside any stage (warnings, waiting for another run, summary). */
  note(line: string): void;
  close(): void;
}

interface Running {
  since: number;
  p: Progress;
  lastPrinted: number;
}

const SYMBOL = {
  ran: 'done',
  cached: 'cached',
  failed: 'FAILED',
  skipped: 'skipped',
  interrupted: 'interrupted',
} as const;

export function createReporter(
  out: NodeJS.WriteStream,
  opts: { tty?: boolean; plainIntervalMs?: number } = {},
): Reporter {
  const tty = opts.tty ?? (out.isTTY === true && process.env.TERM !== 'dumb');
  return tty ? new LiveReporter(out) : new PlainReporter(out, opts.plainIntervalMs ?? 5000);
}

/**
 * A report as text: "40%  step 400/1000  5300 samples/s  ETA 15.0s  10.0s" (the last part
 * the elapsed time, when given). The live display, plain lines and `pipeline status` all
 * show a report this way.
 */
export function describeProgress(p: Progress, elapsedMs?: number): string {
  const parts: string[] = [];
  if (p.fraction !== undefined) parts.push(`${(p.fraction * 100).toFixed(p.fraction < 0.1 ? 1 : 0)}%`);
  if (p.message) parts.push(p.message);
  if (p.rate !== undefined) parts.push(`${compact(p.rate)} ${p.unit ?? 'it'}/s`);
  const eta = elapsedMs === undefined ? p.etaSeconds : etaSeconds(p, elapsedMs / 1000);
  if (eta !== undefined) parts.push(`ETA ${formatDuration(eta * 1000)}`);
  if (elapsedMs !== undefined) parts.push(formatDuration(elapsedMs));
  return parts.join('  ');
}

/**
 * Seconds left: the stage's own estimate, else extrapolated from the fraction done in the
 * elapsed time; none before 0.1% is done (too early to tell) or once all is.
 */
export function etaSeconds(p: Progress, elapsedSeconds: number): number | undefined {
  if (p.etaSeconds !== undefined) return p.etaSeconds;
  const f = p.fraction;
  return f !== undefined && f > 0.001 && f < 1 ? elapsedSeconds * (1 / f - 1) : undefined;
}

function compact(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n >= 100 ? n.toFixed(0) : n.toPrecision(3);
}

function finishLine(instance: string, status: keyof typeof SYMBOL, detail?: string, ms?: number): string {
  const dur = ms !== undefined && status !== 'cached' ? ` in ${formatDuration(ms)}` : '';
  return `${SYMBOL[status]} ${instance}${dur}${detail ? `: ${detail}` : ''}`;
}

class PlainReporter implements Reporter {
  private running = new Map<string, Running>();
  constructor(
    private out: NodeJS.WriteStream,
    private intervalMs: number,
  ) {}
  private line(text: string): void {
    this.out.write(`${new Date().toISOString().slice(11, 19)} ${text}\n`);
  }
  started(instance: string): void {
    this.running.set(instance, { since: Date.now(), p: {}, lastPrinted: Date.now() });
    this.line(`start ${instance}`);
  }
  progress(instance: string, p: Progress): void {
    const r = this.running.get(instance);
    if (!r) return;
    r.p = p;
    const now = Date.now();
    if (now - r.lastPrinted < this.intervalMs) return;
    r.lastPrinted = now;
    this.line(`${instance}  ${describeProgress(p, now - r.since)}`);
  }
  finished(instance: string, status: keyof typeof SYMBOL, detail?: string, ms?: number): void {
    this.running.delete(instance);
    this.line(finishLine(instance, status, detail, ms));
  }
  note(line: string): void {
    this.line(line);
  }
  close(): void {}
}

class LiveReporter implements Reporter {
  private running = new Map<string, Running>();
  private drawn = 0;
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  constructor(private out: NodeJS.WriteStream) {}

  private clear(): void {
    if (this.drawn) this.out.write(`\x1b[${this.drawn}A\x1b[J`);
    this.drawn = 0;
  }
  private draw(): void {
    const width = Math.max(40, (this.out.columns || 100) - 1);
    const now = Date.now();
    const spin = '|/-\\'[this.frame++ % 4];
    const lines = [...this.running].map(([name, r]) => {
      const f = r.p.fraction;
      const bar = f === undefined ? '' : `[${'#'.repeat(Math.round(f * 20)).padEnd(20, '.')}] `;
      return `${spin} ${name}  ${bar}${describeProgress(r.p, now - r.since)}`.slice(0, width);
    });
    this.clear();
    if (lines.length) this.out.write(lines.join('\n') + '\n');
    this.drawn = lines.length;
  }
  private schedule(): void {
    // Redraw at most every 100 ms; the spinner and elapsed time also tick once a second.
    this.timer ??= setInterval(() => this.draw(), 100);
    this.timer.unref();
  }
  private permanent(text: string): void {
    this.clear();
    this.out.write(text + '\n');
    this.draw();
  }
  started(instance: string): void {
    this.running.set(instance, { since: Date.now(), p: {}, lastPrinted: 0 });
    this.schedule();
  }
  progress(instance: string, p: Progress): void {
    const r = this.running.get(instance);
    if (r) r.p = p;
    this.schedule();
  }
  finished(instance: string, status: keyof typeof SYMBOL, detail?: string, ms?: number): void {
    this.running.delete(instance);
    this.permanent(finishLine(instance, status, detail, ms));
  }
  note(line: string): void {
    this.permanent(line);
  }
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }
}
