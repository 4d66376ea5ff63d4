/**
 * HTTP for the hub client: one request with an idle timeout, the token only where it
 * belongs, and exponential backoff for the failures worth retrying.
 *
 * Plain `fetch` (undici, built into Node 20) rather than @huggingface/hub (not installed,
 * and it lacks resume and sha256 verification) or node:http (we would re-implement
 * redirects, keep-alive and TLS options that undici already gets right). Redirects are
 * followed by hand (`redirect: 'manual'`) because the download code needs the CDN URL
 * itself: to resume against it, and to notice when it has expired.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { HubError, RetryableError, abortError } from './errors.js';

export interface HttpConfig {
  /** HF_TOKEN; sent only to `hubOrigin`, never to the CDN (its signed URL is its auth). */
  token?: string;
  hubOrigin: string;
  /** No byte (headers or body) for this long fails the attempt as a timeout. */
  timeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  signal: AbortSignal;
  log(message: string): void;
}

export interface OpenResponse {
  response: Response;
  url: string;
  /** Streams the body, restarting the idle timer on every chunk. */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Releases the connection when the body is not wanted (redirects, errors). */
  discard(): Promise<void>;
}

/** The URL without its query (signed CDN URLs carry credentials in the query). */
export function redactUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/**
 * Sends one request. Network failures and timeouts become RetryableError; an abort of
 * `cfg.signal` becomes an AbortError. Any status is returned as is (no redirect following).
 */
export async function openRequest(
  cfg: HttpConfig,
  url: string,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<OpenResponse> {
  if (cfg.signal.aborted) throw abortError(cfg.signal);
  const controller = new AbortController();
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const armTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, cfg.timeoutMs);
  };
  const onOuterAbort = () => controller.abort();
  cfg.signal.addEventListener('abort', onOuterAbort, { once: true });
  const cleanup = () => {
    clearTimeout(timer);
    cfg.signal.removeEventListener('abort', onOuterAbort);
  };
  const classify = (err: unknown, during: string): Error => {
    cleanup();
    if (cfg.signal.aborted) return abortError(cfg.signal);
    if (timedOut) {
      return new RetryableError(`timeout: no data for ${cfg.timeoutMs / 1000} s ${during} ${redactUrl(url)}`);
    }
    const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
    const detail = cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
    return new RetryableError(`connection failed ${during} ${redactUrl(url)}: ${detail}`, { cause: err });
  };

  // Every await on undici below is raced with our own abort: aborting a fetch whose body
  // has fully arrived but is not yet read can leave the stream's read() pending forever.
  const orAbort = <T>(p: Promise<T>) => raceAbort(p, controller.signal);

  armTimer();
  let response: Response;
  try {
    response = await orAbort(
      fetch(url, {
        method: init.method ?? 'GET',
        headers: { ...authHeader(cfg, url), ...init.headers },
        redirect: 'manual',
        signal: controller.signal,
      }),
    );
  } catch (err) {
    throw classify(err, 'requesting');
  }
  armTimer();

  return {
    response,
    url,
    async *chunks() {
      if (!response.body) return cleanup();
      const reader = response.body.getReader();
      let finished = false;
      try {
        for (;;) {
          const { done, value } = await orAbort(reader.read());
          if (done) break;
          armTimer();
          yield value;
        }
        finished = true;
      } catch (err) {
        throw classify(err, 'reading the body of');
      } finally {
        cleanup();
        if (!finished) reader.cancel().catch(() => undefined); // not awaited: it may never settle
        try {
          reader.releaseLock();
        } catch {
          /* a read still pending (abandoned after an abort): the stream is cancelled anyway */
        }
      }
    },
    async discard() {
      cleanup();
      response.body?.cancel().catch(() => undefined); // not awaited: it may never settle
    },
  };
}

/**
 * `p`, or a rejection as soon as `signal` aborts. A listener per call, removed when `p`
 * settles: racing every read against one long-lived promise would make that promise keep
 * a reaction (and so every chunk read) alive until the request ends.
 */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(new Error('request aborted'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('request aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The body as text, up to `maxBytes` (the rest is discarded). */
export async function readText(open: OpenResponse, maxBytes = 256 * 1024 * 1024): Promise<string> {
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for await (const chunk of open.chunks()) {
    bytes += chunk.length;
    text += decoder.decode(chunk, { stream: true });
    if (bytes >= maxBytes) break;
  }
  return text + decoder.decode();
}

function authHeader(cfg: HttpConfig, url: string): Record<string, string> {
  if (!cfg.token || new URL(url).origin !== cfg.hubOrigin) return {};
  return { Authorization: `Bearer ${cfg.token}` };
}

/** Turns a 5xx or 429 answer into a RetryableError (honouring Retry-After); else null. */
export async function retryableStatus(open: OpenResponse, what: string): Promise<RetryableError | null> {
  const { status, statusText } = open.response;
  if (status < 500 && status !== 429) return null;
  const retryAfterMs = parseRetryAfter(open.response.headers.get('retry-after'));
  await open.discard();
  return new RetryableError(`${what}: HTTP ${status} ${statusText} from ${redactUrl(open.url)}`, { retryAfterMs });
}

function parseRetryAfter(value: string | null): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/**
 * Counts consecutive failed attempts of one operation and waits between them:
 * exponential backoff with jitter (so parallel downloads do not retry in lockstep),
 * capped, bounded by `maxRetries`. `reset()` after progress: a download that keeps
 * advancing between dropped connections is not failing.
 */
export class Backoff {
  private failures = 0;
  constructor(private readonly cfg: HttpConfig) {}

  reset(): void {
    this.failures = 0;
  }

  /** Waits before the next attempt, or throws a final HubError when the attempts are used up. */
  async wait(err: RetryableError, what: string): Promise<void> {
    this.failures++;
    if (this.failures > this.cfg.maxRetries) {
      throw new HubError(`${what}: giving up after ${this.failures} attempts: ${err.message}`, { cause: err });
    }
    const exp = Math.min(this.cfg.backoffMaxMs, this.cfg.backoffBaseMs * 2 ** (this.failures - 1));
    const delay = Math.min(this.cfg.backoffMaxMs * 4, err.retryAfterMs ?? exp * (0.5 + Math.random() * 0.5));
    this.cfg.log(
      `${what}: ${err.message}; retry ${this.failures}/${this.cfg.maxRetries} in ${(delay / 1000).toFixed(1)} s`,
    );
    try {
      await sleep(delay, undefined, { signal: this.cfg.signal });
    } catch {
      throw abortError(this.cfg.signal);
    }
  }
}

/** Runs `attempt` until it succeeds, retrying RetryableErrors with backoff. */
export async function withRetries<T>(cfg: HttpConfig, what: string, attempt: () => Promise<T>): Promise<T> {
  const backoff = new Backoff(cfg);
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof RetryableError)) throw err;
      await backoff.wait(err, what);
    }
  }
}
