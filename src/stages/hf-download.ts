/**
 * `hf-download`: the files of a Hugging Face repository at a pinned commit (or of a local
 * folder), verified, as a folder output. The hub client lives in src/data/hub.
 *
 * The cache key holds `revision` as written (e.g. "main"); the resolved commit is an
 * output, and downstream keys use the downloaded files' digests, so they stay
 * reproducible. HF_TOKEN is read from the environment and is not part of the key.
 */
import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { defineStage } from '../runtime/stage.js';
import { downloadRepo } from '../data/hub/fetch-repo.js';
import { copyLocalSource } from '../data/hub/local.js';

const DEFAULT_ENDPOINT = 'https://huggingface.co';
const OUTPUT_FOLDER = 'repo';

const Params = Type.Object(
  {
    repo: Type.Optional(
      Type.String({ minLength: 1, description: 'Hub repository id, e.g. "mech-interp-uam/llama-mlp8-outputs"' }),
    ),
    repo_type: Type.Union([Type.Literal('dataset'), Type.Literal('model')], { default: 'dataset' }),
    revision: Type.String({ minLength: 1, default: 'main', description: 'Branch, tag or commit sha' }),
    include: Type.Array(Type.String({ minLength: 1 }), {
      default: ['**'],
      description: 'Globs of repo paths to fetch: *, ?, ** (whole segment), [..], {a,b}; no "/" = base name',
    }),
    exclude: Type.Array(Type.String({ minLength: 1 }), { default: [] }),
    source: Type.Optional(
      Type.String({ minLength: 1, description: 'A local folder or file:// URL to use instead of the hub' }),
    ),
    endpoint: Type.Optional(
      Type.String({ pattern: '^https?://', description: 'Hub URL; default $HF_ENDPOINT, else https://huggingface.co' }),
    ),
    concurrency: Type.Integer({ minimum: 1, maximum: 64, default: 4 }),
    max_retries: Type.Integer({ minimum: 0, maximum: 100, default: 5 }),
    timeout_s: Type.Number({ exclusiveMinimum: 0, default: 60, description: 'No data for this long: retry' }),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'hf-download',
  version: '1',
  description: 'Download (or copy from a local folder) the files of a Hugging Face repository, verified',
  params: Params,
  outputs: {
    dir: { kind: 'dir', description: 'The files, under their repo-relative paths' },
    commit: { kind: 'value', description: 'The commit sha the revision resolved to (null for a local source)' },
    files: { kind: 'value', description: 'List of {path, size, sha256}, sorted by path' },
  },
  heavy: false, // I/O bound: no point in a child process
  // The runtime digests the local folder into the key (relative paths: from the pipeline folder).
  inputFiles: (p) => (p.source ? [p.source.startsWith('file:') ? fileURLToPath(p.source) : p.source] : []),
  async run(ctx) {
    const p = ctx.params;
    const destDir = `${ctx.outDir}/${OUTPUT_FOLDER}`;
    if (p.source) {
      if (p.repo) ctx.log(`source ${p.source} is used instead of the hub repo ${p.repo}`);
      const files = await copyLocalSource({
        source: p.source,
        baseDir: ctx.pipelineDir,
        include: p.include,
        exclude: p.exclude,
        destDir,
        signal: ctx.signal,
        log: ctx.log,
        progress: ctx.progress,
      });
      return { dir: OUTPUT_FOLDER, commit: null, files: files.map((f) => ({ ...f })) };
    }
    if (!p.repo) throw new Error('hf-download: give `repo` (a hub repository id) or `source` (a local folder)');

    const env = { ...process.env, ...ctx.env };
    const endpoint = (p.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
    const token = env.HF_TOKEN || undefined;
    ctx.log(`hub ${endpoint}, ${token ? 'with HF_TOKEN' : 'no HF_TOKEN'}`);
    const { commit, files } = await downloadRepo({
      ref: { endpoint, repo: p.repo, repoType: p.repo_type },
      revision: p.revision,
      include: p.include,
      exclude: p.exclude,
      token,
      concurrency: p.concurrency,
      maxRetries: p.max_retries,
      timeoutMs: p.timeout_s * 1000,
      workDir: ctx.workDir,
      destDir,
      signal: ctx.signal,
      log: ctx.log,
      progress: ctx.progress,
    });
    return { dir: OUTPUT_FOLDER, commit, files: files.map((f) => ({ ...f })) };
  },
});
