/**
 * A real HTTP server on 127.0.0.1 that behaves like the Hugging Face hub, for tests:
 * the revision API, the paginated tree listing, `resolve` (LFS files answer 302 to a
 * separate "CDN" server with signed URLs, small files are served directly), Range
 * requests, the X-Repo-Commit / X-Linked-* headers, X-Error-Code on errors, Bearer auth.
 * Faults are switched on per test: dropped connections, stalls, expiring CDN URLs, 5xx,
 * ignored Range, corrupted bodies, missing APIs.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeFile {
  content: Buffer;
  /** Stored in LFS: resolve redirects to the CDN, the listing carries lfs.oid (sha256). */
  lfs?: boolean;
}

export interface FakeRepo {
  type: 'dataset' | 'model';
  /** Branch or tag name -> commit sha. */
  refs: Record<string, string>;
  /** Commit sha -> repo path -> file. */
  commits: Record<string, Record<string, FakeFile>>;
  /** If set, every request must carry `Authorization: Bearer <token>` (else 401). */
  token?: string;
}

export interface Faults {
  /** Tree entries per page (Link rel="next" to the rest). */
  pageSize: number;
  /** For a repo path: the next `times` body responses send `bytes` bytes, then destroy the socket. */
  drop: Map<string, { bytes: number; times: number }>;
  /** For a repo path: the next `times` body responses send `bytes` bytes, then hang until the client leaves. */
  stall: Map<string, { bytes: number; times: number; onStall?: () => void }>;
  /** How many requests one signed CDN URL serves before it answers 403 (expired). */
  cdnUsesPerUrl: number;
  /** Answer 200 with the whole body even when a Range is asked. */
  ignoreRange: boolean;
  /** The next `times` requests whose path matches answer `status` (0: reset the connection, no answer). */
  errors: Array<{ match: RegExp; times: number; status: number }>;
  /** Repo paths whose served bytes have one byte flipped (same size). */
  corrupt: Set<string>;
  /** Repo paths that are listed but whose resolve answers 404 EntryNotFound. */
  missingOnResolve: Set<string>;
  /** Send `Location: /cdn/...` (relative, on the hub's own server) instead of the CDN origin. */
  relativeLocation: boolean;
  /** The revision API answers a bare 404 (no X-Error-Code), like a mirror without it. */
  noRevisionApi: boolean;
  /** Old repo ids (type:id) that answer 307 to the new id, as the hub does after a rename. */
  renamed: Map<string, string>;
  /** Called on each CDN or direct body request, with the repo path (to move a branch mid-download). */
  onBodyRequest?: (path: string) => void;
}

export interface LoggedRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
}

export interface FakeHub {
  endpoint: string;
  cdnOrigin: string;
  repos: Map<string, FakeRepo>;
  faults: Faults;
  requests: LoggedRequest[];
  close(): Promise<void>;
}

/** A random 40-hex commit sha. */
export function newCommitSha(): string {
  return randomBytes(20).toString('hex');
}

export function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

/** Deterministic pseudo-random bytes (so that a wrong offset changes the content). */
export function bytesOf(length: number, seed = 1): Buffer {
  const out = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export function repoKey(type: string, id: string): string {
  return `${type}:${id}`;
}

export async function startFakeHub(): Promise<FakeHub> {
  const faults: Faults = {
    pageSize: 1000,
    drop: new Map(),
    stall: new Map(),
    cdnUsesPerUrl: Infinity,
    ignoreRange: false,
    errors: [],
    corrupt: new Set(),
    missingOnResolve: new Set(),
    relativeLocation: false,
    noRevisionApi: false,
    renamed: new Map(),
  };
  const repos = new Map<string, FakeRepo>();
  const requests: LoggedRequest[] = [];
  /** Signed CDN URLs: sig -> what they serve and how often they were used. */
  const signed = new Map<string, { file: FakeFile; path: string; uses: number }>();
  let nextSig = 0;

  const hub = createServer((req, res) => handle('hub', req, res));
  const cdn = createServer((req, res) => handle('cdn', req, res));
  const endpoint = await listen(hub);
  const cdnOrigin = await listen(cdn);

  function handle(server: 'hub' | 'cdn', req: IncomingMessage, res: ServerResponse): void {
    requests.push({ server, method: req.method ?? 'GET', url: req.url ?? '', headers: req.headers });
    const url = new URL(req.url ?? '/', endpoint);
    const injected = faults.errors.find((e) => e.times > 0 && e.match.test(url.pathname));
    if (injected) {
      injected.times--;
      if (injected.status === 0) return void req.socket.destroy();
      return sendError(res, injected.status, '', 'injected failure');
    }
    for (const [from, to] of faults.renamed) {
      const [type, id] = from.split(':');
      const newId = to.split(':')[1];
      const prefixes =
        type === 'dataset' ? [`/api/datasets/${id}/`, `/datasets/${id}/`] : [`/api/models/${id}/`, `/${id}/`];
      const prefix = prefixes.find((p) => url.pathname.startsWith(p));
      if (prefix) {
        const moved = prefix.replace(id, newId) + url.pathname.slice(prefix.length) + url.search;
        res.writeHead(307, { Location: moved });
        return void res.end();
      }
    }
    const cdnMatch = /^\/cdn\/([^/]+)$/.exec(url.pathname);
    if (cdnMatch) return serveCdn(cdnMatch[1], req, res);
    if (server === 'cdn') return sendError(res, 404, '', 'no such CDN object');
    const api = /^\/api\/(datasets|models)\/([^/]+\/[^/]+)\/(revision|tree)\/([^/]+)$/.exec(url.pathname);
    if (api)
      return serveApi(
        api[1] === 'datasets' ? 'dataset' : 'model',
        api[2],
        api[3],
        decodeURIComponent(api[4]),
        url,
        req,
        res,
      );
    const resolve = /^\/(datasets\/)?([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const path = resolve[4].split('/').map(decodeURIComponent).join('/');
      return serveResolve(resolve[1] ? 'dataset' : 'model', resolve[2], decodeURIComponent(resolve[3]), path, req, res);
    }
    sendError(res, 404, '', 'unknown route');
  }

  /** Finds the repo and commit, or answers the hub's error (auth first, as the hub does). */
  function lookup(
    type: string,
    id: string,
    revision: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): { repo: FakeRepo; sha: string; files: Record<string, FakeFile> } | undefined {
    const repo = repos.get(repoKey(type, id));
    if (!repo) return void sendError(res, 404, 'RepoNotFound', `Repository not found: ${id}`);
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`) {
      return void sendError(res, 401, '', `Access to ${type} ${id} is restricted. You must be authenticated.`);
    }
    const sha = repo.refs[revision] ?? (repo.commits[revision] ? revision : undefined);
    if (!sha) return void sendError(res, 404, 'RevisionNotFound', `Invalid rev id: ${revision}`);
    return { repo, sha, files: repo.commits[sha] };
  }

  function serveApi(
    type: string,
    id: string,
    kind: string,
    revision: string,
    url: URL,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    if (kind === 'revision' && faults.noRevisionApi) return sendError(res, 404, '', 'Not Found');
    const found = lookup(type, id, revision, req, res);
    if (!found) return;
    if (kind === 'revision') return sendJson(res, { id, sha: found.sha });
    const entries = treeEntries(found.files);
    const start = Number(url.searchParams.get('cursor') ?? 0);
    const page = entries.slice(start, start + faults.pageSize);
    if (start + faults.pageSize < entries.length) {
      const next = new URL(url);
      next.searchParams.set('cursor', String(start + faults.pageSize));
      res.setHeader('Link', `<${next.toString()}>; rel="next"`);
    }
    sendJson(res, page);
  }

  function serveResolve(
    type: string,
    id: string,
    revision: string,
    path: string,
    req: IncomingMessage,
    res: ServerResponse,
  ): void {
    const found = lookup(type, id, revision, req, res);
    if (!found) return;
    const file = found.files[path];
    if (!file || faults.missingOnResolve.has(path))
      return sendError(res, 404, 'EntryNotFound', `${path} does not exist on "${revision}"`);
    res.setHeader('X-Repo-Commit', found.sha);
    if (!file.lfs) {
      res.setHeader('ETag', `"${gitBlobSha1(file.content)}"`);
      return serveBody(path, file, req, res);
    }
    const sig = `s${nextSig++}`;
    signed.set(sig, { file, path, uses: 0 });
    res.setHeader('X-Linked-Size', String(file.content.length));
    res.setHeader('X-Linked-Etag', `"${sha256(file.content)}"`);
    const where = `/cdn/${sig}?X-Amz-Signature=${randomBytes(8).toString('hex')}`;
    res.writeHead(302, { Location: faults.relativeLocation ? where : `${cdnOrigin}${where}` });
    res.end();
  }

  function serveCdn(sig: string, req: IncomingMessage, res: ServerResponse): void {
    const entry = signed.get(sig);
    if (!entry) return sendError(res, 404, '', 'NoSuchKey');
    if (++entry.uses > faults.cdnUsesPerUrl) return sendError(res, 403, '', 'Request has expired');
    serveBody(entry.path, entry.file, req, res);
  }

  /** The bytes, honouring Range, with the faults configured for this path. */
  function serveBody(path: string, file: FakeFile, req: IncomingMessage, res: ServerResponse): void {
    faults.onBodyRequest?.(path);
    let content = file.content;
    if (faults.corrupt.has(path) && content.length > 0) {
      content = Buffer.from(content);
      content[content.length >> 1] ^= 0xff;
    }
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = content.length - 1;
    if (range && !faults.ignoreRange) {
      start = Number(range[1]);
      if (range[2]) end = Math.min(end, Number(range[2]));
      if (start >= content.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
        return void res.end();
      }
      res.writeHead(206, {
        'Content-Range': `bytes ${start}-${end}/${content.length}`,
        'Content-Length': String(end - start + 1),
        'Accept-Ranges': 'bytes',
      });
    } else {
      res.writeHead(200, { 'Content-Length': String(content.length), 'Accept-Ranges': 'bytes' });
    }
    const body = content.subarray(start, end + 1);
    if (req.method === 'HEAD') return void res.end();

    const drop = takeFault(faults.drop, path);
    if (drop) {
      return void res.write(body.subarray(0, drop.bytes), () => setTimeout(() => req.socket.destroy(), 20));
    }
    const stall = takeFault(faults.stall, path);
    if (stall) {
      return void res.write(body.subarray(0, stall.bytes), () => setTimeout(() => stall.onStall?.(), 20));
    }
    res.end(body);
  }

  return {
    endpoint,
    cdnOrigin,
    repos,
    faults,
    requests,
    async close() {
      for (const s of [hub, cdn]) {
        s.closeAllConnections();
        await new Promise<void>((resolve) => s.close(() => resolve()));
      }
    },
  };
}

function takeFault<T extends { times: number }>(map: Map<string, T>, path: string): T | undefined {
  const fault = map.get(path);
  if (!fault || fault.times <= 0) return undefined;
  fault.times--;
  return fault;
}

/** Tree entries as the hub lists them: directories too, files with oid and lfs. */
function treeEntries(files: Record<string, FakeFile>): object[] {
  const dirs = new Set<string>();
  const entries: object[] = [];
  for (const path of Object.keys(files).sort()) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!dirs.has(dir)) {
        dirs.add(dir);
        entries.push({ type: 'directory', oid: gitBlobSha1(Buffer.from(dir)), size: 0, path: dir });
      }
    }
    const { content, lfs } = files[path];
    if (lfs) {
      const pointer = Buffer.from(
        `version https://git-lfs.github.com/spec/v1\noid sha256:${sha256(content)}\nsize ${content.length}\n`,
      );
      entries.push({
        type: 'file',
        oid: gitBlobSha1(pointer),
        size: content.length,
        path,
        lfs: { oid: sha256(content), size: content.length, pointerSize: pointer.length },
      });
    } else {
      entries.push({ type: 'file', oid: gitBlobSha1(content), size: content.length, path });
    }
  }
  return entries;
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: string, message: string): void {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', 'X-Error-Message': message };
  if (code) headers['X-Error-Code'] = code;
  res.writeHead(status, headers);
  res.end(JSON.stringify({ error: message }));
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
