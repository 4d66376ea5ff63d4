/**
 * `shell`: a step written in any language, as in DVC or Snakemake. The command runs with
 * `bash -c` in the pipeline's folder (or `cwd`), with $OUT (its output folder), $WORK (scratch
 * that survives a crash), $PIPELINE_DIR, and each declared input as $INPUT_0, $INPUT_1...
 * (absolute paths; all of them in $INPUTS, one per line). Declared inputs are digested into
 * the cache key; each entry of `outputs` must be created inside $OUT and becomes a file/dir
 * output of the stage. A command can report progress by printing `::progress 0.4 message`.
 * A `${{ }}` reference in `cmd` reaches bash as an environment variable, never as command
 * text (the runtime rewrites it: see runtime/shell-refs.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type } from '@sinclair/typebox';
import { defineStage, type Json, type OutputDecl, type StageContext } from '../runtime/stage.js';
import { interpolationText } from '../runtime/refs.js';
import { NUM_VAR_PREFIX } from '../runtime/shell-refs.js';

/** Environment values: text as is, numbers in shortest form, lists and objects as JSON. */
const EnvVars = Type.Unsafe<Record<string, Json>>({
  type: 'object',
  description: 'environment variables for the command',
  patternProperties: {
    // A value that the command uses in bash arithmetic: anything but a number could run code.
    [`^${NUM_VAR_PREFIX}`]: {
      anyOf: [
        { type: 'number' },
        { type: 'string', pattern: '^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?$' },
      ],
      description: 'a number (the command uses this value in bash arithmetic)',
    },
  },
  default: {},
});

/** A path inside $OUT: relative, no `.`/`..`/empty segments, no control characters. */
const OutputPath = Type.String({
  pattern: '^(?!/)(?!(.*/)?[.][.]?(/|$))(?!.*//)[^\\u0000-\\u001f\\u007f]+$',
  description: 'a relative path inside $OUT (no ., .. or empty segments, no control characters)',
});

const Params = Type.Object(
  {
    cmd: Type.String({ minLength: 1, description: 'bash command' }),
    inputs: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      description: 'files/folders read, relative to the pipeline folder',
    }),
    outputs: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_-]*$' }), OutputPath, {
      default: {},
      description: 'output name -> path the command creates inside $OUT (a trailing / marks a folder)',
      additionalProperties: false,
    }),
    env: EnvVars,
    cwd: Type.Optional(
      Type.String({ description: 'working folder, relative to the pipeline folder (default: the pipeline folder)' }),
    ),
  },
  { additionalProperties: false },
);

export default defineStage({
  name: 'shell',
  version: '1',
  description: 'Runs a bash command; declared inputs are hashed, declared outputs are cached files/folders',
  params: Params,
  outputs: {},
  shellCommand: { field: 'cmd', env: 'env' },
  dynamicOutputs(params) {
    const out: Record<string, OutputDecl> = {};
    for (const [name, path] of Object.entries(params.outputs ?? {})) {
      if (typeof path !== 'string') continue;
      out[name] = { kind: path.endsWith('/') ? 'dir' : 'file', description: `${path} created by the command` };
    }
    return out;
  },
  inputFiles: (params) => params.inputs ?? [],
  async run(ctx) {
    const { cmd, inputs = [], outputs = {}, env = {}, cwd } = ctx.params;
    const inputEnv: Record<string, string> = {};
    const absInputs = inputs.map((p) => resolve(ctx.pipelineDir, p));
    absInputs.forEach((p, i) => (inputEnv[`INPUT_${i}`] = p));
    const childEnv: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...ctx.env,
      ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolationText(v)])),
      ...inputEnv,
      INPUTS: absInputs.join('\n'),
      OUT: ctx.outDir,
      WORK: ctx.workDir,
      PIPELINE_DIR: ctx.pipelineDir,
    };
    await runBash(cmd, resolve(ctx.pipelineDir, cwd ?? '.'), childEnv, ctx);
    const result: Record<string, string> = {};
    for (const [name, path] of Object.entries(outputs)) {
      const rel = path.replace(/\/+$/, '');
      if (!existsSync(resolve(ctx.outDir, rel)))
        throw new Error(`the command did not create output '${name}' ($OUT/${rel})`);
      result[name] = rel;
    }
    return result;
  },
});

/** Runs bash through the context (its own process group, ended on abort), lines to the log. */
function runBash(
  cmd: string,
  cwd: string,
  env: Record<string, string>,
  ctx: Pick<StageContext<unknown>, 'log' | 'progress' | 'signal' | 'spawn'>,
): Promise<void> {
  return new Promise((resolveRun, reject) => {
    if (ctx.signal.aborted) return reject(new Error('interrupted'));
    const child = ctx.spawn('bash', ['-c', cmd], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const onLine = (line: string) => {
      const m = /^::progress\s+([0-9.]+)\s*(.*)$/.exec(line);
      if (m) ctx.progress({ fraction: Math.min(1, Number(m[1])), message: m[2] || undefined });
      else ctx.log(line);
    };
    for (const stream of [child.stdout!, child.stderr!]) {
      let rest = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        const lines = (rest + chunk).split('\n');
        rest = lines.pop()!;
        lines.forEach(onLine);
      });
      stream.on('end', () => rest && onLine(rest));
    }
    child.on('error', (e) => reject(new Error(`could not start bash: ${e.message}`)));
    child.on('close', (code, sig) => {
      if (ctx.signal.aborted) reject(new Error('interrupted'));
      else if (code === 0) resolveRun();
      else reject(new Error(sig ? `command killed by ${sig}` : `command exited with code ${code}`));
    });
  });
}
