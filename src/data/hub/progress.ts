/**
 * Download progress across concurrent files: bytes done of total, files done, MB/s over
 * the bytes actually transferred in this run (a resumed prefix is done, not transferred),
 * and an ETA. Reports are throttled: a fast download would otherwise report per chunk.
 */
import type { OnProgress, Progress } from '../../util/progress.js';

export class DownloadProgress {
  private doneBytes = 0;
  private transferred = 0;
  private filesDone = 0;
  private lastReport = 0;
  private readonly started = Date.now();

  constructor(
    private readonly totalBytes: number,
    private readonly totalFiles: number,
    private readonly report: OnProgress,
    private readonly intervalMs = 250,
  ) {}

  /** Bytes already on disk from an earlier attempt (count as done, not as speed). */
  resumed(bytes: number): void {
    this.doneBytes += bytes;
    this.emit(false);
  }

  transferredBytes(bytes: number): void {
    this.doneBytes += bytes;
    this.transferred += bytes;
    this.emit(false);
  }

  /** A file restarted from byte 0 (or was deleted): its bytes are no longer done. */
  discarded(bytes: number): void {
    this.doneBytes -= bytes;
  }

  fileDone(): void {
    this.filesDone++;
    this.emit(true);
  }

  private emit(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    const seconds = Math.max(1e-3, (now - this.started) / 1000);
    const bytesPerSecond = this.transferred / seconds;
    const left = Math.max(0, this.totalBytes - this.doneBytes);
    const p: Progress = {
      fraction: this.totalBytes > 0 ? this.doneBytes / this.totalBytes : this.filesDone / Math.max(1, this.totalFiles),
      rate: Number((bytesPerSecond / 1e6).toFixed(2)),
      unit: 'MB',
      message:
        `${this.filesDone}/${this.totalFiles} files, ${formatBytes(this.doneBytes)}/${formatBytes(this.totalBytes)}, ` +
        `${(bytesPerSecond / 1e6).toFixed(1)} MB/s`,
    };
    if (bytesPerSecond > 0) p.etaSeconds = Math.round(left / bytesPerSecond);
    this.report(p);
  }
}

export function formatBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}
