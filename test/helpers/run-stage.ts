/**
 * Runs one stage type's run() directly, outside a pipeline: params validated against the
 * stage's schema with defaults applied, fresh outDir/workDir under a temp folder.
 * For unit tests of stage adapters; pipelines are tested through the runtime.
 */
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { spawnGroup } from '../../src/runtime/launch.js';
import type { StageContext, StageType, StageOutputs } from '../../src/runtime/stage.js';
import type { Progress } from '../../src/util/progress.js';

export interface DirectRun {
  outputs: StageOutputs;
  outDir: string;
  workDir: string;
  logs: string[];
  progress: Progress[];
}

export async function runStageDirect(
  stage: StageType<any>,
  params: Record<string, unknown>,
  opts: {
    root?: string;
    workDir?: string;
    signal?: AbortSignal;
    pipelineDir?: string;
    spawn?: StageContext<unknown>['spawn'];
  } = {},
): Promise<DirectRun> {
  const ajv = new Ajv({ useDefaults: true, allErrors: true, strict: false });
  const validate = ajv.compile(stage.params);
  const p = structuredClone(params);
  if (!validate(p)) throw new Error(`bad params for ${stage.name}: ${ajv.errorsText(validate.errors)}`);
  const root = opts.root ?? mkdtempSync(join(tmpdir(), `stage-${stage.name}-`));
  const outDir = join(root, 'out');
  const workDir = opts.workDir ?? join(root, 'work');
  mkdirSync(outDir, { recursive: true });
  mkdirSync(workDir, { recursive: true });
  const logs: string[] = [];
  const progress: Progress[] = [];
  const signal = opts.signal ?? new AbortController().signal;
  const outputs = await stage.run({
    params: p,
    instance: stage.name,
    outDir,
    workDir,
    pipelineDir: opts.pipelineDir ?? root,
    log: (m) => logs.push(m),
    progress: (x) => progress.push(x),
    signal,
    spawn: opts.spawn ?? ((command, args, request) => spawnGroup(command, args, request, signal, 3000)),
    env: {},
  });
  return { outputs, outDir, workDir, logs, progress };
}
