/**
 * The content-addressed cache under `artifacts/` (every kind of state a run leaves, and who
 * removes it: docs/artifacts.md):
 *   cache/<key>/out/...        committed outputs of one stage run
 *   cache/<key>/manifest.json  output values, per-file sha256/size/mtime, output digests
 *   tmp/<pid>-<rand>/          a run in progress (out/ + manifest), renamed into cache/ on success
 *   work/<key>/                scratch/checkpoints that survive a crash; removed after commit
 *   locks/<key>.lock           per-entry lock (O_EXCL, owner pid) so two runs never compute one entry twice
 *   logs/<pipeline>/<instance>.log
 *   filehash.json              (size, mtime) -> sha256 memo of input files
 *   locks-index.json           lock files written by runs, for `gc`
 */
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  type Stats,
} from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { digestJson, treeDigest } from './hash.js';
import { breakIfStale, pidAlive } from './fsutil.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { hashFile } from '../util/hash.js';
import type { Json, OutputDecl } from './stage.js';

export class Artifacts {
  readonly cache: string;
  readonly tmp: string;
  readonly work: string;
  readonly locks: string;
  readonly logs: string;
  constructor(readonly root: string) {
    this.cache = join(root, 'cache');
    this.tmp = join(root, 'tmp');
    this.work = join(root, 'work');
    this.locks = join(root, 'locks');
    this.logs = join(root, 'logs');
  }
  entryDir(key: string): string {
    return join(this.cache, key);
  }
  entryLock(key: string): string {
    return join(this.locks, `${key}.lock`);
  }
  workDir(key: string): string {
    return join(this.work, key);
  }
  /** A fresh temporary folder, named after this process so orphans of dead runs can be removed. */
  newTmp(): string {
    const dir = join(this.tmp, `${process.pid}-${randomBytes(6).toString('hex')}`);
    mkdirSync(join(dir, 'out'), { recursive: true });
    return dir;
  }
  /** Removes entry locks whose owner process is gone (a run killed between commit and unlock). */
  removeStaleLocks(): void {
    let names: string[];
    try {
      names = readdirSync(this.locks);
    } catch {
      return;
    }
    for (const name of names) if (name.endsWith('.lock')) breakIfStale(join(this.locks, name));
  }
  /** Removes temporary folders left by runs whose process is gone (a SIGKILL, a crash). */
  removeOrphanTmp(): void {
    let names: string[];
    try {
      names = readdirSync(this.tmp);
    } catch {
      return;
    }
    for (const name of names) {
      const pid = Number(name.split('-')[0]);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !pidAlive(pid)) {
        rmSync(join(this.tmp, name), { recursive: true, force: true });
      }
    }
  }
}

/**
 * The default artifacts folder: `<project>/artifacts`, where the project is the parent of a
 * `pipelines/` folder holding the file, else the file's own folder. Overridden by --artifacts,
 * then by $PIPELINE_ARTIFACTS.
 */
export function artifactsRoot(pipelineFile: string | undefined, flag?: string): string {
  if (flag) return resolve(flag);
  if (process.env.PIPELINE_ARTIFACTS) return resolve(process.env.PIPELINE_ARTIFACTS);
  if (!pipelineFile) return resolve('artifacts');
  const dir = dirname(resolve(pipelineFile));
  return basename(dir) === 'pipelines' ? join(dirname(dir), 'artifacts') : join(dir, 'artifacts');
}

export interface ManifestOutput {
  kind: OutputDecl['kind'];
  /** For `value` outputs. */
  value?: Json;
  /** For `file`/`dir` outputs: path relative to the entry's out/ folder. */
  path?: string;
  digest: string;
}

export interface Manifest {
  format: 'pipeline-cache/1';
  key: string;
  uses: string;
  version: string;
  /** The instance that computed it first (entries are shared by equal keys). */
  instance: string;
  outputs: Record<string, ManifestOutput>;
  files: Record<string, { sha256: string; size: number; mtimeMs: number }>;
  /** Every folder under out/ (relative paths), so that the listing is known exactly. */
  dirs?: string[];
  /** Digest of all outputs: what downstream lock entries record. */
  digest: string;
}

export type Lookup = { ok: true; manifest: Manifest } | { ok: false; reason: 'missing' | 'corrupt'; detail?: string };

/**
 * Checks an entry before reuse. Cheap mode: every file's size and mtime against the manifest
 * (a file whose mtime changed but size did not is re-hashed, so a copied cache still works).
 * `verify`: every file re-hashed.
 */
export async function lookupEntry(art: Artifacts, key: string, verify = false): Promise<Lookup> {
  const dir = art.entryDir(key);
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      return existsSync(dir)
        ? { ok: false, reason: 'corrupt', detail: 'manifest missing' }
        : { ok: false, reason: 'missing' };
    return { ok: false, reason: 'corrupt', detail: 'manifest unreadable' };
  }
  if (manifest.key !== key || !manifest.files || !manifest.outputs)
    return { ok: false, reason: 'corrupt', detail: 'manifest does not match its key' };
  const extra = unlistedContent(join(dir, 'out'), manifest);
  if (extra) return { ok: false, reason: 'corrupt', detail: extra };
  for (const [rel, f] of Object.entries(manifest.files)) {
    const abs = join(dir, 'out', rel);
    let st: Stats;
    try {
      st = statSync(abs);
    } catch {
      return { ok: false, reason: 'corrupt', detail: `${rel} missing` };
    }
    if (st.size !== f.size) return { ok: false, reason: 'corrupt', detail: `${rel} size ${f.size} -> ${st.size}` };
    // Millisecond resolution: tools that copy or restore times (cp -p, rsync) keep no more.
    if (verify || Math.abs(st.mtimeMs - f.mtimeMs) >= 1) {
      if ((await hashFile(abs)) !== f.sha256) return { ok: false, reason: 'corrupt', detail: `${rel} content changed` };
      // Same content under a new mtime (a copied cache): give the file back the manifest's
      // mtime, so the next lookup is the cheap stat check again instead of a re-hash.
      if (Math.abs(st.mtimeMs - f.mtimeMs) >= 1) {
        try {
          utimesSync(abs, st.atimeMs / 1000, f.mtimeMs / 1000);
        } catch {
          // A read-only cache still works; it is only re-hashed each time.
        }
      }
    }
  }
  return { ok: true, manifest };
}

/**
 * What is in a committed out/ folder beyond its manifest (a file or folder added to a folder
 * output, a link put in place of a file), as a reason; undefined when the listing is exact.
 * Entries from before folders were recorded (no `dirs`) are checked for extra files only.
 */
function unlistedContent(outDir: string, manifest: Manifest): string | undefined {
  let tree: OutputTree;
  try {
    tree = walkTree(outDir);
  } catch (e) {
    return `out/ unreadable (${(e as Error).message})`;
  }
  if (tree.special.length) return `${tree.special[0].rel} is ${tree.special[0].what}`;
  const added = tree.files.find((f) => !(f in manifest.files));
  if (added) return `${added} added`;
  if (manifest.dirs) {
    const known = new Set(manifest.dirs);
    const dir = tree.dirs.find((d) => !known.has(d));
    if (dir) return `folder ${dir} added`;
  }
  return undefined;
}

interface OutputTree {
  files: string[];
  dirs: string[];
  /** Anything neither a regular file nor a folder: links, FIFOs, sockets, devices. */
  special: Array<{ rel: string; st: Stats; what: string }>;
}

/** Everything under a folder, by lstat (nothing is opened or followed), sorted. */
function walkTree(root: string): OutputTree {
  const tree: OutputTree = { files: [], dirs: [], special: [] };
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      if (st.isDirectory()) {
        tree.dirs.push(r);
        walk(r);
      } else if (st.isFile()) tree.files.push(r);
      else tree.special.push({ rel: r, st, what: kindOf(st) });
    }
  };
  walk('');
  tree.files.sort();
  tree.dirs.sort();
  return tree;
}

function kindOf(st: Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a regular file';
}

/**
 * Makes a finished stage's output folder plain files and folders, before anything is hashed:
 * a cache entry must hold its content, not point at something that can change or vanish.
 * A link to a regular file inside the stage's own output or work folder is replaced by a copy
 * of the file (the work folder is removed after the commit); any other link (outside,
 * dangling, to a folder) and any FIFO, socket or device is refused with a clear error. Nothing
 * is opened before it is known to be a regular file, so a FIFO cannot hang the runner.
 */
export function materializeOutputs(outDir: string, workDir?: string): void {
  const roots = [outDir, ...(workDir ? [workDir] : [])].map((d) => realpathOrSelf(d));
  for (const { rel, st, what } of walkTree(outDir).special) {
    const abs = join(outDir, rel);
    const refuse = (why: string) => new Error(`output ${rel} is ${why}: outputs must be regular files and folders`);
    if (!st.isSymbolicLink()) throw refuse(what);
    let target: string;
    try {
      target = realpathSync(abs);
    } catch {
      throw refuse('a dangling symbolic link');
    }
    if (!roots.some((r) => target.startsWith(r + '/')))
      throw refuse(`a symbolic link to ${target}, outside the stage's output and work folders (copy the file instead)`);
    if (!statSync(target).isFile()) throw refuse(`a symbolic link to ${target}, which is not a regular file`);
    rmSync(abs);
    copyFileSync(target, abs);
  }
}

function realpathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return resolve(p);
  }
}

/** Absolute path of a file/dir output inside a committed entry. */
export function outputPath(art: Artifacts, key: string, rel: string): string {
  return join(art.entryDir(key), 'out', rel);
}

/**
 * Builds the manifest of a finished run's out/ folder: hashes each file once, and the
 * digest of each declared output (value: canonical JSON; file: content; dir: its tree).
 * The folder must hold only regular files and folders (see materializeOutputs).
 */
export async function buildManifest(
  outDir: string,
  base: Omit<Manifest, 'format' | 'outputs' | 'files' | 'dirs' | 'digest'>,
  declared: Record<string, OutputDecl>,
  returned: Record<string, Json>,
): Promise<Manifest> {
  const tree = walkTree(outDir);
  if (tree.special.length)
    throw new Error(
      `output ${tree.special[0].rel} is ${tree.special[0].what}: outputs must be regular files and folders`,
    );
  const files: Manifest['files'] = {};
  for (const rel of tree.files) {
    const abs = join(outDir, rel);
    const st = statSync(abs);
    files[rel] = { sha256: await hashFile(abs), size: st.size, mtimeMs: st.mtimeMs };
  }
  const outputs: Record<string, ManifestOutput> = {};
  for (const [name, decl] of Object.entries(declared)) {
    const v = returned[name];
    if (decl.kind === 'value') {
      outputs[name] = { kind: 'value', value: v, digest: digestJson(v) };
      continue;
    }
    const rel = normalizeRel(v, name, outDir);
    const st = statSync(join(outDir, rel));
    if (st.isDirectory()) {
      const prefix = rel === '.' ? '' : `${rel}/`;
      const tree = Object.keys(files)
        .filter((f) => f.startsWith(prefix))
        .map((f): [string, string] => [f.slice(prefix.length), files[f].sha256]);
      outputs[name] = { kind: decl.kind, path: rel, digest: treeDigest(tree) };
    } else {
      outputs[name] = { kind: decl.kind, path: rel, digest: files[rel].sha256 };
    }
  }
  const digest = digestJson(Object.fromEntries(Object.entries(outputs).map(([k, o]) => [k, o.digest])));
  return { format: 'pipeline-cache/1', ...base, outputs, files, dirs: tree.dirs, digest };
}

/** Checks that a file/dir output is a relative path that exists inside outDir. */
export function normalizeRel(v: Json | undefined, name: string, outDir: string): string {
  if (typeof v !== 'string' || v === '')
    throw new Error(`output '${name}': expected a path relative to the output folder, got ${JSON.stringify(v)}`);
  const abs = resolve(outDir, v);
  if (abs !== outDir && !abs.startsWith(outDir + '/'))
    throw new Error(`output '${name}': path ${v} is outside the output folder`);
  if (!existsSync(abs)) throw new Error(`output '${name}': ${v} was not created in the output folder`);
  const rel = abs === outDir ? '.' : abs.slice(outDir.length + 1);
  return rel;
}

/**
 * Commits a finished temporary folder as cache/<key> by rename (atomic on one file system).
 * An existing (invalid or forced-over) entry is moved aside first, then removed.
 */
export function commitEntry(art: Artifacts, tmpDir: string, manifest: Manifest): void {
  writeFileAtomic(join(tmpDir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  const target = art.entryDir(manifest.key);
  mkdirSync(art.cache, { recursive: true });
  if (existsSync(target)) {
    const aside = join(art.tmp, `${process.pid}-old-${randomBytes(4).toString('hex')}`);
    renameSync(target, aside);
    rmSync(aside, { recursive: true, force: true });
  }
  renameSync(tmpDir, target);
}
