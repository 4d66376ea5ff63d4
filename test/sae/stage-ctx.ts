/**
 * Runs the train-sae stage with a caller-controlled context (progress hook, abort signal,
 * shared workDir), params validated with the schema's defaults as the runtime does.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { spawnGroup } from '../../src/runtime/launch.js';
import trainSaeStage from '../../src/stages/train-sae.js';
import type { Progress } from '../../src/util/progress.js';

export async function runTrainSae(
  params: Record<string, unknown>,
  dirs: { outDir: string; workDir: string },
  hooks: { onProgress?: (p: Progress) => void; signal?: AbortSignal } = {},
) {
  const ajv = new Ajv({ useDefaults: true, strict: false });
  const validate = ajv.compile(trainSaeStage.params);
  const p = structuredClone(params);
  if (!validate(p)) throw new Error(`bad params: ${ajv.errorsText(validate.errors)}`);
  mkdirSync(dirs.outDir, { recursive: true });
  mkdirSync(dirs.workDir, { recursive: true });
  const logs: string[] = [];
  const signal = hooks.signal ?? new AbortController().signal;
  const outputs = await trainSaeStage.run({
    params: p as any,
    instance: 'test',
    outDir: dirs.outDir,
    workDir: dirs.workDir,
    pipelineDir: join(dirs.outDir, '..'),
    log: (m) => logs.push(m),
    progress: (x) => hooks.onProgress?.(x),
    signal,
    env: {},
    spawn: (command, args, request) => spawnGroup(command, args, request, signal, 3000),
  });
  return { outputs, logs };
}
