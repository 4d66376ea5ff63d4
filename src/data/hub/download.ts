/**
 * Downloads one file of a pinned commit into a partial file that survives crashes:
 * resume with Range, follow the hub's redirect to the CDN, resolve again when the CDN
 * URL expires, retry what is worth retrying, and verify size and digests at the end.
 * A file that fails verification is deleted, never kept.
 */
import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { HubApi, TreeFile } from './api.js';
import { HubError, RetryableError } from './errors.js';
import { Backoff, type OpenResponse, openRequest, redactUrl, retryableStatus } from './http.js';
import type { DownloadProgress } from './progress.js';
import { ContentHasher, type Expected, expectedOf } from './verify.js';

export interface DownloadedFile {
  path: string;
  size: number;
  sha256: string;
}

export interface FileJob {
  api: HubApi;
  /** The pinned commit sha: every request names it, never the branch. */
  commit: string;
  file: TreeFile;
  /** Where the bytes accumulate; a later run resumes from whatever is there. */
  partialPath: string;
  progress: DownloadProgress;
}

export async function downloadFile(job: FileJob): Promise<DownloadedFile> {
  const { file } = job;
  const expected = expectedOf(file);
  const partial = await PartialFile.open(job.partialPath, expected, job.progress);
  if (partial.bytes > 0) job.api.http.log(`${file.path}: resuming from byte ${partial.bytes} of ${file.size}`);
  try {
    await new Transfer(job, partial, expected).run();
  } finally {
    await partial.close();
  }
  const { sha256, problem } = partial.hasher.finish();
  if (problem) {
    await rm(job.partialPath, { force: true });
    job.progress.discarded(partial.bytes);
    throw new HubError(
      `${file.path} from ${job.api.label} at ${job.commit} failed verification: ${problem}. ` +
        `The bad file was deleted; run again to download it anew.`,
    );
  }
  job.progress.fileDone();
  return { path: file.path, size: file.size, sha256 };
}

/** The loop of requests for one file, until all its bytes are on disk. */
class Transfer {
  private readonly hubUrl: string;
  private readonly backoff: Backoff;
  /** Consecutive redirects and CDN expiries without progress, each bounded. */
  private redirects = 0;
  private expiries = 0;

  constructor(
    private readonly job: FileJob,
    private readonly partial: PartialFile,
    private readonly expected: Expected,
  ) {
    this.hubUrl = job.api.resolveUrl(job.commit, job.file.path);
    this.backoff = new Backoff(job.api.http);
  }

  async run(): Promise<void> {
    let url = this.hubUrl;
    while (this.partial.bytes < this.job.file.size) {
      const before = this.partial.bytes;
      try {
        url = await this.attempt(url);
      } catch (err) {
        if (!(err instanceof RetryableError)) throw err;
        if (this.partial.bytes > before) this.backoff.reset();
        // Keep the CDN URL: a resumed request goes there first, and an expiry sends us back.
        await this.backoff.wait(err, `downloading ${this.job.file.path}`);
      }
      if (this.partial.bytes > before) this.redirects = this.expiries = 0;
    }
  }

  /** One request; returns the URL for the next one (a redirect target, or the hub again). */
  private async attempt(url: string): Promise<string> {
    const { api, file } = this.job;
    const headers: Record<string, string> = { 'Accept-Encoding': 'identity' }; // byte offsets must be raw bytes
    if (this.partial.bytes > 0) headers.Range = `bytes=${this.partial.bytes}-`;
    const open = await openRequest(api.http, url, { headers });
    const { status } = open.response;
    const fromHub = url === this.hubUrl;
    if (fromHub) this.checkHubHeaders(open.response.headers);

    const location = open.response.headers.get('location');
    if (status >= 300 && status < 400 && location) {
      await open.discard();
      if (++this.redirects > 10) throw new HubError(`${file.path}: too many redirects from ${redactUrl(url)}`);
      return new URL(location, url).toString(); // relative Location allowed
    }
    const retry = await retryableStatus(open, `downloading ${file.path}`);
    if (retry) throw retry;
    if (!fromHub && (status === 401 || status === 403 || status === 410)) {
      await open.discard();
      if (++this.expiries > api.http.maxRetries + 1) {
        throw new HubError(`${file.path}: the CDN keeps refusing fresh URLs (HTTP ${status} from ${redactUrl(url)})`);
      }
      api.http.log(`${file.path}: CDN URL refused (HTTP ${status}, expired?); resolving again from the hub`);
      return this.hubUrl;
    }
    if (status === 416) {
      // Our partial claims bytes the server does not have: it is not this file; start over.
      await open.discard();
      api.http.log(`${file.path}: server refused Range from byte ${this.partial.bytes}; restarting from 0`);
      await this.partial.restart();
      return url;
    }
    if (fromHub && (status < 200 || status >= 300)) {
      throw await api.failure(open, { what: 'file', revision: this.job.commit, path: file.path });
    }
    if (status !== 200 && status !== 206) {
      await open.discard();
      throw new HubError(`${file.path}: unexpected HTTP ${status} from ${redactUrl(url)}`);
    }
    await this.receive(open);
    return url;
  }

  /** Streams the body into the partial file, from byte 0 or from where it stopped. */
  private async receive(open: OpenResponse): Promise<void> {
    const { file, api } = this.job;
    const { status, headers } = open.response;
    if (status === 206) {
      const start = contentRangeStart(headers.get('content-range'));
      if (start !== this.partial.bytes) {
        await open.discard();
        api.http.log(`${file.path}: server sent a range from byte ${start}, not ${this.partial.bytes}; restarting`);
        await this.partial.restart();
        return;
      }
    } else if (this.partial.bytes > 0) {
      api.http.log(`${file.path}: server ignored Range (HTTP 200); restarting from byte 0`);
      await this.partial.restart();
    }
    for await (const chunk of open.chunks()) {
      await this.partial.write(chunk);
      if (this.partial.bytes > file.size) break; // too long: verification reports the size
    }
    if (this.partial.bytes < file.size) {
      throw new RetryableError(`connection ended after byte ${this.partial.bytes} of ${file.size}`);
    }
  }

  /**
   * The resolve answer says which commit it serves and, for LFS files, the content's size
   * and sha256: they must agree with the pinned listing.
   */
  private checkHubHeaders(headers: Headers): void {
    const { file, commit } = this.job;
    const servedCommit = headers.get('x-repo-commit');
    if (servedCommit && servedCommit !== commit) {
      throw new HubError(
        `${file.path}: the hub served commit ${servedCommit}, but the download is pinned to ${commit}`,
      );
    }
    const linkedSize = headers.get('x-linked-size');
    if (linkedSize && Number(linkedSize) !== file.size) {
      throw new HubError(`${file.path}: the listing says ${file.size} bytes, the hub's X-Linked-Size ${linkedSize}`);
    }
    const etag = (headers.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
    if (/^[0-9a-f]{64}$/.test(etag)) {
      if (this.expected.sha256 && this.expected.sha256 !== etag) {
        throw new HubError(
          `${file.path}: the listing's sha256 ${this.expected.sha256} differs from X-Linked-Etag ${etag}`,
        );
      }
      this.expected.sha256 = etag;
    }
  }
}

function contentRangeStart(value: string | null): number | undefined {
  const match = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(value?.trim() ?? '');
  return match ? Number(match[1]) : undefined;
}

/** The partial file on disk and the running digests of its bytes. */
class PartialFile {
  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
    readonly hasher: ContentHasher,
    private readonly progress: DownloadProgress,
  ) {}

  get bytes(): number {
    return this.hasher.bytes;
  }

  /** Opens (or creates) the partial and hashes what it already holds. */
  static async open(path: string, expected: Expected, progress: DownloadProgress): Promise<PartialFile> {
    await mkdir(dirname(path), { recursive: true });
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT);
    const partial = new PartialFile(handle, path, new ContentHasher(expected), progress);
    try {
      let existing = (await handle.stat()).size;
      if (existing > expected.size) {
        await handle.truncate(0); // longer than the file can be: not a prefix of it
        existing = 0;
      }
      await partial.hasher.updateFromFile(path, existing);
      progress.resumed(existing);
      return partial;
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    let written = 0;
    try {
      while (written < chunk.length) {
        const r = await this.handle.write(chunk, written, chunk.length - written, this.bytes + written);
        written += r.bytesWritten;
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new HubError(`writing ${this.path}: ${e.code ?? ''} ${e.message}`, { cause: err });
    }
    this.hasher.update(chunk);
    this.progress.transferredBytes(chunk.length);
  }

  async restart(): Promise<void> {
    await this.handle.truncate(0);
    this.progress.discarded(this.bytes);
    this.hasher.reset();
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}
