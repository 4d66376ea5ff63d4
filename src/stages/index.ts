/**
 * The registry of stage types. Each module keeps heavy imports (tfjs, parquet) inside
 * run(), so that loading the registry to validate a pipeline stays fast.
 */
import type { StageType } from '../runtime/stage.js';

const registry = new Map<string, StageType<any>>();

export function registerStage(stage: StageType<any>): void {
  if (registry.has(stage.name)) throw new Error(`stage type ${stage.name} registered twice`);
  registry.set(stage.name, stage);
}

export function getStageType(name: string): StageType<any> | undefined {
  return registry.get(name);
}

export function stageTypeNames(): string[] {
  return [...registry.keys()].sort();
}

// Stage modules register themselves below (one import per stage type).
