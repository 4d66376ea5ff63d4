/** Errors of the hub client: final ones (HubError) and ones worth another try (RetryableError). */

/** A failure that another attempt will not fix: gated repo, missing file, bad checksum. */
export class HubError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HubError';
  }
}

/** A failure another attempt may fix: 5xx, 429, connection reset, timeout, dropped body. */
export class RetryableError extends Error {
  /** Server-requested wait (Retry-After), if any. */
  readonly retryAfterMs?: number;
  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, { cause: options?.cause });
    this.name = 'RetryableError';
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The run was cancelled (Ctrl-C, or a sibling download failed): stop, do not retry. */
export function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || err.name === 'CancelledError');
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason;
  if (reason instanceof Error && isAbort(reason)) return reason;
  const err = new Error(reason instanceof Error ? reason.message : 'download aborted');
  err.name = 'AbortError';
  return err;
}
