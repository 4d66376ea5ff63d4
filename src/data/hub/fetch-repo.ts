/**
 * Downloads the selected files of a hub repository at one pinned commit.
 *
 * Layout: bytes accumulate in `{workDir}/hub/{commit}/{repo path}` (the work folder
 * survives a crash, so a re-run resumes there); once every file is verified they are
 * hard-linked (or copied) into `destDir` under their repo paths.
 */
import pLimit from 'p-limit';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Progress } from '../../util/progress.js';
import { HubApi, type RepoRef, type TreeFile } from './api.js';
import { type DownloadedFile, downloadFile } from './download.js';
import { abortError, isAbort } from './errors.js';
import { compileSelection } from './glob.js';
import type { HttpConfig } from './http.js';
import { placeLocalFile } from './local.js';
import { DownloadProgress, formatBytes } from './progress.js';

export interface RepoDownloadOptions {
  ref: RepoRef;
  revision: string;
  include: string[];
  exclude: string[];
  /** HF_TOKEN: sent to the hub only, never logged. */
  token?: string;
  concurrency: number;
  maxRetries: number;
  timeoutMs: number;
  /** First backoff delay; doubles per failed attempt (jittered), capped at 30 s. */
  backoffBaseMs?: number;
  workDir: string;
  destDir: string;
  signal: AbortSignal;
  log(message: string): void;
  progress(p: Progress): void;
}

export interface RepoDownload {
  commit: string;
  files: DownloadedFile[];
}

export async function downloadRepo(opts: RepoDownloadOptions): Promise<RepoDownload> {
  const stop = new AbortController(); // the first failure stops the other downloads
  const http: HttpConfig = {
    token: opts.token,
    hubOrigin: new URL(opts.ref.endpoint).origin,
    timeoutMs: opts.timeoutMs,
    maxRetries: opts.maxRetries,
    backoffBaseMs: opts.backoffBaseMs ?? 500,
    backoffMaxMs: 30_000,
    signal: AbortSignal.any([opts.signal, stop.signal]),
    log: opts.log,
  };
  const api = new HubApi(opts.ref, http);

  const commit = await api.resolveCommit(opts.revision);
  opts.log(`${api.label}: revision "${opts.revision}" is commit ${commit}`);
  const selected = selectFiles(await api.listFiles(commit), opts, api.label);
  const totalBytes = selected.reduce((sum, f) => sum + f.size, 0);
  opts.log(`${selected.length} files selected, ${formatBytes(totalBytes)}`);

  const commitDir = join(opts.workDir, 'hub', commit);
  await pruneOtherCommits(join(opts.workDir, 'hub'), commit, opts.log);
  const progress = new DownloadProgress(totalBytes, selected.length, opts.progress);
  const started = Date.now();
  const files = await runAll(selected, opts.concurrency, stop, opts.signal, (file) =>
    downloadFile({ api, commit, file, partialPath: join(commitDir, file.path), progress }),
  );
  const seconds = (Date.now() - started) / 1000;
  opts.log(`downloaded and verified ${files.length} files (${formatBytes(totalBytes)}) in ${seconds.toFixed(1)} s`);

  for (const f of files) {
    const dest = join(opts.destDir, f.path);
    await mkdir(dirname(dest), { recursive: true });
    await placeLocalFile(join(commitDir, f.path), dest, true);
  }
  return { commit, files: files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)) };
}

function selectFiles(all: TreeFile[], opts: RepoDownloadOptions, label: string): TreeFile[] {
  const matches = compileSelection(opts.include, opts.exclude);
  const selected = all.filter((f) => matches(f.path));
  if (selected.length === 0) {
    const some = all
      .slice(0, 10)
      .map((f) => f.path)
      .join(', ');
    throw new Error(
      `no file of ${label} at "${opts.revision}" matches include ${JSON.stringify(opts.include)} ` +
        `exclude ${JSON.stringify(opts.exclude)}; it has ${all.length} files${all.length ? `: ${some}` : ''}`,
    );
  }
  return selected;
}

/**
 * Runs `task` over `items` with bounded concurrency. On the first failure the others
 * are stopped (their partial files stay for a re-run); all tasks have settled before
 * this returns or throws, so nothing writes after the stage has ended.
 */
async function runAll<T, R>(
  items: T[],
  concurrency: number,
  stop: AbortController,
  outer: AbortSignal,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const limit = pLimit(concurrency);
  let firstError: unknown;
  const settled = await Promise.allSettled(
    items.map((item) =>
      limit(async () => {
        if (stop.signal.aborted) throw abortError(stop.signal);
        try {
          return await task(item);
        } catch (err) {
          if (firstError === undefined && !isAbort(err)) firstError = err;
          stop.abort();
          throw err;
        }
      }),
    ),
  );
  if (outer.aborted) throw abortError(outer);
  if (firstError !== undefined) throw firstError;
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

/** Partial files of another commit (the branch moved since an earlier attempt) are stale. */
async function pruneOtherCommits(hubDir: string, commit: string, log: (m: string) => void): Promise<void> {
  const entries = await readdir(hubDir).catch(() => [] as string[]);
  for (const name of entries) {
    if (name === commit) continue;
    log(`removing partial downloads of an earlier commit ${name}`);
    await rm(join(hubDir, name), { recursive: true, force: true });
  }
}

/** Hard link (no copy of gigabytes; the work folder is removed after commit), else copy. */
