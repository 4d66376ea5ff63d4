/** Finding the pipeline file; kept free of heavy imports (used before anything else loads). */
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PipelineError } from './errors.js';

/** `pipeline run scaling.yaml` also finds `pipelines/scaling.yaml` (and `scaling` finds `scaling.yaml`). */
export function findPipelineFile(arg: string): string {
  const candidates = [arg, `${arg}.yaml`, `${arg}.yml`].flatMap((c) => [c, join('pipelines', c)]);
  for (const c of candidates) if (existsSync(c) && statSync(c).isFile()) return resolve(c);
  throw new PipelineError(`pipeline file ${arg} not found (also looked for pipelines/${arg})`);
}
