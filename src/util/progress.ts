/** Progress reports: what a stage, a download or a training loop tells whoever shows it. */

/** Progress a stage reports while it runs; every field optional. */
export interface Progress {
  /** 0..1 of the stage's work done. */
  fraction?: number;
  /** Short free text: "step 1200/5000 loss 0.041 L0 52". */
  message?: string;
  /** Throughput: `unit`s per second (rate 5300, unit 'samples' is shown as "5.3k samples/s"). */
  rate?: number;
  unit?: string;
  /** Seconds left, if the stage knows better than fraction/elapsed. */
  etaSeconds?: number;
}

/** The callback that receives progress reports. */
export type OnProgress = (p: Progress) => void;
