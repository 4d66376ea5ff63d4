/**
 * Named resources with a per-machine capacity (`--resources gpu=2,mem=64` or
 * $PIPELINE_RESOURCES). `gpu` units are device ids, handed to the stage as
 * CUDA_VISIBLE_DEVICES. Undeclared resources other than gpu are unlimited.
 */
import { spawnSync } from 'node:child_process';
import { PipelineError } from './errors.js';

export function parseResources(text: string | undefined, source: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (!text) return out;
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)=(\d+)$/.exec(item);
    if (!m) throw new PipelineError(`${source}: expected NAME=COUNT[,NAME=COUNT...], got '${item}'`);
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** GPUs this process may use: $CUDA_VISIBLE_DEVICES if set, else `nvidia-smi -L`, else none. */
export function detectGpus(): string[] {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined)
    return visible
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '' && s !== '-1');
  try {
    const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
    if (r.status !== 0) return [];
    return r.stdout
      .split('\n')
      .filter((l) => l.startsWith('GPU '))
      .map((_, i) => String(i));
  } catch {
    return [];
  }
}

export interface Grant {
  /** Extra environment for the stage: CUDA_VISIBLE_DEVICES when it holds GPUs. */
  env: Record<string, string>;
  /** Set when a GPU was asked for but the machine has none: the stage runs on CPU. */
  cpuFallback: boolean;
  release(): void;
}

export class ResourcePool {
  private free: Map<string, number>;
  private freeGpus: string[];
  private waiters: Array<() => void> = [];

  /**
   * A pool that grants everything at once and assigns no devices: for an executor whose
   * scheduler (Slurm) owns the machines, counts the resources and sets CUDA_VISIBLE_DEVICES.
   */
  static unlimited(): ResourcePool {
    const pool = new ResourcePool({}, []);
    pool.elsewhere = true;
    return pool;
  }

  private elsewhere = false;

  constructor(
    private capacity: Record<string, number>,
    gpuIds: string[],
  ) {
    this.free = new Map(Object.entries(capacity));
    // An explicit gpu=N beyond the detected devices names devices 0..N-1 (the user knows best).
    const ids =
      capacity.gpu !== undefined && gpuIds.length < capacity.gpu
        ? Array.from({ length: capacity.gpu }, (_, i) => String(i))
        : gpuIds;
    this.freeGpus = ids.slice(0, capacity.gpu ?? ids.length);
    if (capacity.gpu === undefined) this.free.set('gpu', this.freeGpus.length);
  }

  /** Checked before anything runs: a request larger than the capacity could never be granted. */
  check(name: string, req: Record<string, number>): void {
    for (const [r, n] of Object.entries(req)) {
      if (r === 'gpu') continue;
      const cap = this.capacity[r];
      if (cap !== undefined && n > cap) {
        throw new PipelineError(
          `stage ${name} needs ${r}=${n} but this machine's capacity is ${r}=${cap} (set --resources ${r}=N or $PIPELINE_RESOURCES)`,
        );
      }
    }
  }

  private fits(req: Record<string, number>): boolean {
    return Object.entries(req).every(([r, n]) => {
      if (r === 'gpu') return n === 0 || this.gpuTotal() === 0 || this.freeGpus.length >= Math.min(n, this.gpuTotal());
      return !this.free.has(r) || this.free.get(r)! >= n;
    });
  }

  private gpuTotal(): number {
    return this.capacity.gpu ?? this.free.get('gpu') ?? 0;
  }

  async acquire(req: Record<string, number>, signal: AbortSignal): Promise<Grant> {
    if (this.elsewhere) return { env: {}, cpuFallback: false, release: () => {} };
    while (!this.fits(req)) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      await new Promise<void>((resolve) => {
        const wake = () => {
          signal.removeEventListener('abort', wake);
          resolve();
        };
        this.waiters.push(wake);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
    if (signal.aborted) throw signal.reason ?? new Error('aborted');
    const taken: Array<[string, number]> = [];
    for (const [r, n] of Object.entries(req)) {
      if (r !== 'gpu' && this.free.has(r)) {
        this.free.set(r, this.free.get(r)! - n);
        taken.push([r, n]);
      }
    }
    const wantGpus = req.gpu ?? 0;
    const gpus =
      wantGpus > 0 && this.gpuTotal() > 0 ? this.freeGpus.splice(0, Math.min(wantGpus, this.gpuTotal())) : [];
    const env: Record<string, string> = {};
    if (wantGpus > 0) env.CUDA_VISIBLE_DEVICES = gpus.join(',');
    let released = false;
    return {
      env,
      cpuFallback: wantGpus > 0 && gpus.length === 0,
      release: () => {
        if (released) return;
        released = true;
        for (const [r, n] of taken) this.free.set(r, this.free.get(r)! + n);
        this.freeGpus.push(...gpus);
        const w = this.waiters;
        this.waiters = [];
        for (const wake of w) wake();
      },
    };
  }
}
