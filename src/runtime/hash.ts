/**
 * Content digests: sha256 of canonical JSON and of folder trees, and the
 * (size, mtime) -> sha256 memo that keeps input files from being re-hashed on every run.
 */
import { readdirSync, readFileSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { canonicalJson } from './format.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { hashFile, sha256 } from '../util/hash.js';

export function digestJson(v: unknown): string {
  return sha256(canonicalJson(v));
}

/** Files under a folder, as sorted paths relative to it (symlinks followed). */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      const isDir = e.isDirectory() || (e.isSymbolicLink() && statSync(join(dir, r)).isDirectory());
      if (isDir) walk(r);
      else out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** Digest of a folder: of the sorted (relative path, file digest) list. */
export function treeDigest(entries: Array<[string, string]>): string {
  return digestJson(entries);
}

interface MemoEntry {
  size: number;
  mtimeMs: number;
  sha256: string;
}

/** Remembers file digests by (size, mtime); a file is re-hashed only when either changed. */
/** A file modified less than this long ago is hashed again next time, whatever its stats say. */
export const RACY_MS = 2000;

export class FileHashMemo {
  private entries: Record<string, MemoEntry> | undefined;
  private dirty = false;
  /** Every input file and folder looked at, with the stats seen (for the no-op snapshot). */
  readonly seenFiles = new Map<string, [number, number]>();
  readonly seenDirs = new Set<string>();
  /** Digests computed (or being computed) by this process, by path and stats. */
  private readonly hashing = new Map<string, { statKey: string; digest: Promise<string> }>();
  constructor(readonly path: string) {}

  private load(): Record<string, MemoEntry> {
    if (!this.entries) {
      try {
        this.entries = JSON.parse(readFileSync(this.path, 'utf8'));
      } catch {
        this.entries = {};
      }
    }
    return this.entries!;
  }

  async file(abs: string, st: Stats = statSync(abs)): Promise<string> {
    const memo = this.load();
    const hit = memo[abs];
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit.sha256;
    // Instances are evaluated concurrently: the ones sharing an input share one hashing of it.
    const statKey = `${st.size}:${st.mtimeMs}`;
    const inFlight = this.hashing.get(abs);
    if (inFlight?.statKey === statKey) return inFlight.digest;
    const pending = this.hashAndRemember(abs, st);
    this.hashing.set(abs, { statKey, digest: pending });
    return pending;
  }

  private async hashAndRemember(abs: string, st: Stats): Promise<string> {
    const memo = this.load();
    const digest = await hashFile(abs);
    // "Racy" stats (as git calls them): file times tick at the kernel's coarse clock, so a file
    // rewritten with the same size moments after being hashed can keep its mtime. Remember
    // only digests of files that have been still for a while.
    if (Date.now() - st.mtimeMs > RACY_MS) {
      memo[abs] = { size: st.size, mtimeMs: st.mtimeMs, sha256: digest };
      this.dirty = true;
    }
    return digest;
  }

  /** Digest of a file or of a folder tree. Throws ENOENT if missing. */
  async digest(abs: string): Promise<string> {
    const st = statSync(abs);
    if (!st.isDirectory()) {
      this.seenFiles.set(abs, [st.size, st.mtimeMs]);
      return this.file(abs, st);
    }
    this.seenDirs.add(abs);
    const entries: Array<[string, string]> = [];
    for (const rel of listFiles(abs)) entries.push([rel, await this.file(join(abs, rel))]);
    return treeDigest(entries);
  }

  save(): void {
    if (!this.dirty || !this.entries) return;
    // Merge with what other runs wrote meanwhile; losing an entry only costs a re-hash.
    let onDisk: Record<string, MemoEntry> = {};
    try {
      onDisk = JSON.parse(readFileSync(this.path, 'utf8'));
    } catch {
      /* first save */
    }
    writeFileAtomic(this.path, JSON.stringify({ ...onDisk, ...this.entries }));
    this.dirty = false;
  }
}
