/**
 * A local folder (or `file://` URL) in place of the hub, for users who already have the
 * files: list, filter with the same globs, bring each file into the output folder and
 * record its sha256.
 *
 * How a file is brought over: small files are copied (copy-on-write where the filesystem
 * can). Large ones are reflinked when the filesystem supports it (instant, and independent
 * of the original), else hard-linked (instant, no extra space; the caveat: an in-place edit
 * of the original would also change the cached copy), else copied. Never symlinked: a
 * cache entry must not depend on a folder that can move or disappear.
 */
import { constants } from 'node:fs';
import { copyFile, link, mkdir, readdir, realpath, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Progress } from '../../util/progress.js';
import type { DownloadedFile } from './download.js';
import { compileSelection } from './glob.js';
import { DownloadProgress, formatBytes } from './progress.js';
import { hashFile } from '../../util/hash.js';

/** Files at least this large are reflinked or hard-linked rather than copied. */
export const LINK_THRESHOLD_BYTES = 64 * 1024 * 1024;

export type PlaceMethod = 'copied' | 'reflinked' | 'hard-linked';

export interface LocalCopyOptions {
  /** A path (relative to `baseDir`) or a file:// URL. */
  source: string;
  baseDir: string;
  include: string[];
  exclude: string[];
  destDir: string;
  /** Files at least this large are reflinked or hard-linked (default LINK_THRESHOLD_BYTES). */
  linkThresholdBytes?: number;
  signal: AbortSignal;
  log(message: string): void;
  progress(p: Progress): void;
}

/** The folder a `source` param names: file:// URLs and absolute paths as is, else under baseDir. */
export function localSourcePath(source: string, baseDir: string): string {
  if (source.startsWith('file:')) return fileURLToPath(source);
  return resolve(baseDir, source);
}

export async function copyLocalSource(opts: LocalCopyOptions): Promise<DownloadedFile[]> {
  const root = localSourcePath(opts.source, opts.baseDir);
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    throw new Error(`source "${opts.source}": ${root} ${rootStat ? 'is not a folder' : 'does not exist'}`);
  }
  const matches = compileSelection(opts.include, opts.exclude);
  const all = await listFiles(root);
  const selected = all.filter((f) => matches(f.path));
  if (selected.length === 0) {
    throw new Error(
      `no file under ${root} matches include ${JSON.stringify(opts.include)} exclude ${JSON.stringify(opts.exclude)} ` +
        `(it has ${all.length} files${
          all.length
            ? ': ' +
              all
                .slice(0, 10)
                .map((f) => f.path)
                .join(', ')
            : ''
        })`,
    );
  }
  const totalBytes = selected.reduce((s, f) => s + f.size, 0);
  opts.log(`local source ${root}: ${selected.length} of ${all.length} files selected, ${formatBytes(totalBytes)}`);

  const progress = new DownloadProgress(totalBytes, selected.length, opts.progress);
  const counts: Record<PlaceMethod, number> = { copied: 0, reflinked: 0, 'hard-linked': 0 };
  const files: DownloadedFile[] = [];
  for (const f of selected) {
    if (opts.signal.aborted) throw opts.signal.reason ?? new Error('aborted');
    const dest = join(opts.destDir, f.path);
    await mkdir(dirname(dest), { recursive: true });
    const threshold = opts.linkThresholdBytes ?? LINK_THRESHOLD_BYTES;
    counts[await placeLocalFile(join(root, f.path), dest, f.size >= threshold)]++;
    // Hash the placed copy: it is what downstream stages will read.
    files.push({ path: f.path, size: f.size, sha256: await hashFile(dest) });
    progress.transferredBytes(f.size);
    progress.fileDone();
  }
  const how = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([m, n]) => `${n} ${m}`);
  opts.log(
    `local source: ${how.join(', ')} (files under ${formatBytes(opts.linkThresholdBytes ?? LINK_THRESHOLD_BYTES)} are always copied)`,
  );
  return files;
}

/** Every regular file under root (symlinks followed), as sorted '/'-separated relative paths. */
async function listFiles(root: string): Promise<Array<{ path: string; size: number }>> {
  const out: Array<{ path: string; size: number }> = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      // Not data: git metadata, and the .cache/huggingface folder `huggingface-cli download --local-dir` writes.
      if (entry.name === '.git' || relPath === '.cache/huggingface') continue;
      const full = join(dir, entry.name);
      const s = await stat(full); // follows symlinks (a hub cache snapshot is all symlinks)
      if (s.isDirectory()) await walk(full, relPath);
      else if (s.isFile()) out.push({ path: relPath, size: s.size });
    }
  };
  await walk(root, '');
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Puts src at dest: small files copied; large ones reflinked, else hard-linked, else copied. */
export async function placeLocalFile(src: string, dest: string, large: boolean): Promise<PlaceMethod> {
  if (!large) {
    await copyFile(src, dest, constants.COPYFILE_FICLONE); // reflinks where it can, silently copies otherwise
    return 'copied';
  }
  try {
    await copyFile(src, dest, constants.COPYFILE_FICLONE_FORCE);
    return 'reflinked';
  } catch {
    /* no reflink on this filesystem */
  }
  try {
    await link(await realpath(src), dest); // realpath: link() would link a symlink itself
    return 'hard-linked';
  } catch {
    /* another filesystem */
  }
  await copyFile(src, dest);
  return 'copied';
}
