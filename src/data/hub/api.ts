/**
 * The hub's HTTP API, as far as downloading a repository needs it: pin a revision to a
 * commit, list the files at that commit, build resolve URLs, and explain failures.
 */
import { HubError } from './errors.js';
import {
  type HttpConfig,
  type OpenResponse,
  openRequest,
  readText,
  redactUrl,
  retryableStatus,
  withRetries,
} from './http.js';

export type RepoType = 'dataset' | 'model';

export interface RepoRef {
  /** e.g. https://huggingface.co, no trailing slash. */
  endpoint: string;
  /** owner/name */
  repo: string;
  repoType: RepoType;
}

/** One file of the tree listing. `oid` is the git blob sha1; `lfs.oid` the sha256 of the content. */
export interface TreeFile {
  path: string;
  size: number;
  oid?: string;
  lfs?: { oid: string; size: number; pointerSize?: number };
}

/** What a failed request was about, so a 404 can say what is missing. */
export interface FailureContext {
  what: 'revision' | 'listing' | 'file';
  revision: string;
  path?: string;
}

const SHA1_HEX = /^[0-9a-f]{40}$/;

export class HubApi {
  constructor(
    readonly ref: RepoRef,
    readonly http: HttpConfig,
  ) {
    if (!/^[\w.-]+(\/[\w.-]+)?$/.test(ref.repo) || ref.repo.split('/').some((s) => s === '.' || s === '..')) {
      throw new HubError(`repo "${ref.repo}" is not a hub repository id (expected owner/name)`);
    }
  }

  /** Human name for messages: `dataset mech-interp-uam/llama-mlp8-outputs`. */
  get label(): string {
    return `${this.ref.repoType} ${this.ref.repo}`;
  }

  /** The repository's web page, where gated datasets ask for their terms to be accepted. */
  get pageUrl(): string {
    const prefix = this.ref.repoType === 'dataset' ? 'datasets/' : '';
    return `${this.ref.endpoint}/${prefix}${this.ref.repo}`;
  }

  private apiBase(): string {
    return `${this.ref.endpoint}/api/${this.ref.repoType}s/${this.ref.repo}`;
  }

  /** `GET .../resolve/{revision}/{path}`: the hub answers 302 to the CDN, or the bytes. */
  resolveUrl(revision: string, path: string): string {
    const prefix = this.ref.repoType === 'dataset' ? 'datasets/' : '';
    const encodedPath = path.split('/').map(encodeURIComponent).join('/');
    return `${this.ref.endpoint}/${prefix}${this.ref.repo}/resolve/${encodeURIComponent(revision)}/${encodedPath}`;
  }

  /**
   * Pins a branch, tag or commit to a commit sha, so that every file is then fetched at
   * that sha and a branch moving mid-download cannot mix versions. Uses the revision API;
   * a hub (or mirror) without it is pinned through the X-Repo-Commit header of a resolve.
   */
  async resolveCommit(revision: string): Promise<string> {
    const ctx: FailureContext = { what: 'revision', revision };
    const url = `${this.apiBase()}/revision/${encodeURIComponent(revision)}`;
    const answer = await this.getJson(url, ctx, [404, 405, 501]);
    if (answer.status === 200) {
      const sha = (answer.json as { sha?: unknown } | null)?.sha;
      if (typeof sha === 'string' && SHA1_HEX.test(sha)) return sha;
      throw new HubError(`${redactUrl(url)} answered without a commit sha (got ${JSON.stringify(sha)})`);
    }
    // Any 404 naming what is missing was already thrown; one without a code may be a hub without this API.
    this.http.log(`${redactUrl(url)}: HTTP ${answer.status}; pinning the revision via X-Repo-Commit instead`);
    return this.commitFromResolveHeader(revision);
  }

  private async commitFromResolveHeader(revision: string): Promise<string> {
    const files = await this.listFiles(revision);
    if (files.length === 0) throw new HubError(`${this.label} has no files at revision "${revision}"`);
    const ctx: FailureContext = { what: 'file', revision, path: files[0].path };
    const open = await this.request(this.resolveUrl(revision, files[0].path), ctx, {
      method: 'HEAD',
      allow: [301, 302, 303, 307, 308],
    });
    await open.discard();
    const sha = open.response.headers.get('x-repo-commit');
    if (sha && SHA1_HEX.test(sha)) return sha;
    throw new HubError(`cannot pin revision "${revision}" of ${this.label}: the hub sent no X-Repo-Commit header`);
  }

  /** Every file of the repository at `revision` (follows `Link: <...>; rel="next"` pages). */
  async listFiles(revision: string): Promise<TreeFile[]> {
    const ctx: FailureContext = { what: 'listing', revision };
    const files: TreeFile[] = [];
    let url: string | undefined = `${this.apiBase()}/tree/${encodeURIComponent(revision)}?recursive=true&expand=false`;
    const seen = new Set<string>();
    while (url) {
      if (seen.has(url)) throw new HubError(`tree listing of ${this.label} loops: page ${redactUrl(url)} came twice`);
      seen.add(url);
      const { json, link } = await this.getJson(url, ctx);
      if (!Array.isArray(json)) throw new HubError(`tree listing ${redactUrl(url)} is not a JSON array`);
      for (const entry of json) {
        if (entry?.type === 'file') files.push(parseTreeFile(entry, url));
      }
      url = nextPageUrl(link, url);
    }
    return files;
  }

  /**
   * GET a JSON document, with retries (also of a body cut short). Statuses in `allow`
   * come back with `json: null`; other failures are thrown as explained HubErrors.
   */
  private async getJson(
    url: string,
    ctx: FailureContext,
    allow: number[] = [],
  ): Promise<{ status: number; json: unknown; link: string | null }> {
    return withRetries(this.http, `GET ${redactUrl(url)}`, async () => {
      const open = await this.requestOnce(url, ctx, { allow });
      const { status, headers } = open.response;
      if (status < 200 || status >= 300) {
        await open.discard();
        return { status, json: null, link: null };
      }
      return { status, json: await readJson(open, url), link: headers.get('link') };
    });
  }

  /**
   * GET/HEAD with retries of 5xx, 429 and connection failures. A status in `allow` is
   * returned to the caller; any other non-2xx status becomes a HubError that says why.
   */
  async request(
    url: string,
    ctx: FailureContext,
    opts: { method?: string; allow?: number[] } = {},
  ): Promise<OpenResponse> {
    return withRetries(this.http, `${opts.method ?? 'GET'} ${redactUrl(url)}`, () => this.requestOnce(url, ctx, opts));
  }

  private async requestOnce(
    url: string,
    ctx: FailureContext,
    opts: { method?: string; allow?: number[] },
  ): Promise<OpenResponse> {
    const open = await this.openFollowingRedirects(url, opts);
    const retry = await retryableStatus(open, this.label);
    if (retry) throw retry;
    const { status } = open.response;
    const coded404 = status === 404 && open.response.headers.get('x-error-code');
    if ((status >= 200 && status < 300) || (opts.allow?.includes(status) && !coded404)) return open;
    throw await this.failure(open, ctx);
  }

  /**
   * One request, following redirects (a renamed repository answers 307 to its new name)
   * unless the caller asked for the redirect itself via `allow`.
   */
  private async openFollowingRedirects(
    url: string,
    opts: { method?: string; allow?: number[] },
  ): Promise<OpenResponse> {
    for (let hops = 0; ; hops++) {
      const open = await openRequest(this.http, url, { method: opts.method, headers: { Accept: 'application/json' } });
      const { status } = open.response;
      const location = open.response.headers.get('location');
      if (status < 300 || status >= 400 || !location || opts.allow?.includes(status)) return open;
      await open.discard();
      if (hops >= 10) throw new HubError(`too many redirects from ${redactUrl(url)}`);
      url = new URL(location, url).toString();
    }
  }

  /**
   * Explains a failed hub answer: 401/403 (gated or private, how to pass a token), 404
   * (repository, revision or file, from the hub's X-Error-Code or else from context).
   */
  async failure(open: OpenResponse, ctx: FailureContext): Promise<HubError> {
    const { status } = open.response;
    const code = open.response.headers.get('x-error-code') ?? '';
    const hubMessage = open.response.headers.get('x-error-message') ?? (await errorBodySnippet(open));
    await open.discard();
    const answered = `HTTP ${status}${code ? ' ' + code : ''}${hubMessage ? `, hub says: ${hubMessage}` : ''}`;
    const rev = `"${ctx.revision}"`;
    if (code === 'RepoNotFound') {
      return new HubError(
        `${this.label} not found at ${this.ref.endpoint} (${answered}). Check the name and repo_type; ` +
          `a private repository also answers this way without a valid HF_TOKEN.`,
      );
    }
    if (status === 401 || status === 403) {
      const tokenNote = this.http.token
        ? 'The HF_TOKEN that was sent was refused: check that it is valid and that its account has access.'
        : 'No HF_TOKEN is set.';
      return new HubError(
        `${this.label} is gated or private (${answered}): accept the terms on the dataset page ${this.pageUrl} ` +
          `and set HF_TOKEN=<a read token from ${this.ref.endpoint}/settings/tokens> in the environment. ${tokenNote}`,
      );
    }
    if (code === 'RevisionNotFound') return new HubError(`revision ${rev} not found in ${this.label} (${answered})`);
    if (code === 'EntryNotFound' || (status === 404 && ctx.what === 'file')) {
      return new HubError(`file "${ctx.path}" not found in ${this.label} at revision ${rev} (${answered})`);
    }
    if (status === 404) {
      return new HubError(`${this.label} or its revision ${rev} not found at ${this.ref.endpoint} (${answered})`);
    }
    return new HubError(`${this.label}: unexpected answer from ${redactUrl(open.url)} (${answered})`);
  }
}

function parseTreeFile(entry: Record<string, unknown>, url: string): TreeFile {
  const { path, size, oid, lfs } = entry as { path: unknown; size: unknown; oid: unknown; lfs: unknown };
  if (typeof path !== 'string' || typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) {
    throw new HubError(`tree listing ${redactUrl(url)}: bad file entry ${JSON.stringify(entry).slice(0, 200)}`);
  }
  assertSafeRepoPath(path);
  const file: TreeFile = { path, size };
  if (typeof oid === 'string') file.oid = oid;
  if (lfs && typeof lfs === 'object' && typeof (lfs as { oid?: unknown }).oid === 'string') {
    const l = lfs as { oid: string; size?: number; pointerSize?: number };
    file.lfs = { oid: l.oid, size: typeof l.size === 'number' ? l.size : size, pointerSize: l.pointerSize };
  }
  return file;
}

/** Repo paths become local paths: refuse any that could escape the output folder. */
export function assertSafeRepoPath(path: string): void {
  const segments = path.split('/');
  if (
    path === '' ||
    path.startsWith('/') ||
    path.includes('\\') ||
    path.includes('\0') ||
    segments.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new HubError(`refusing unsafe file path from the hub: ${JSON.stringify(path)}`);
  }
}

/** The `rel="next"` URL of a Link header, resolved against the current page's URL. */
export function nextPageUrl(link: string | null, current: string): string | undefined {
  if (!link) return undefined;
  for (const part of link.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (match && /;\s*rel="?next"?/i.test(match[2])) return new URL(match[1], current).toString();
  }
  return undefined;
}

async function readJson(open: OpenResponse, url: string): Promise<any> {
  const text = await readText(open);
  try {
    return JSON.parse(text);
  } catch {
    throw new HubError(`${redactUrl(url)} did not answer JSON: ${text.slice(0, 200)}`);
  }
}

/** The start of an error body, for messages (`{"error": "..."}` or text); never throws. */
async function errorBodySnippet(open: OpenResponse): Promise<string> {
  try {
    const text = (await readText(open, 64 * 1024)).trim();
    try {
      const json = JSON.parse(text) as { error?: unknown };
      if (typeof json.error === 'string') return json.error;
    } catch {
      /* not JSON: use the text */
    }
    return text.slice(0, 200);
  } catch {
    return '';
  }
}
