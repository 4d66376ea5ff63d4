/**
 * Training checkpoints in the stage's workDir: one safetensors file holding the weights, both
 * Adam moments of every parameter and the dead-feature counters, with the rest of the state
 * (step, Adam step counts, loader cursor, RNG state, a fingerprint of the run's shape) as JSON
 * in the header metadata. One file, written to .tmp then renamed: a kill leaves either the
 * previous checkpoint or the new one, never half of one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors, type NamedTensor } from './safetensors.js';
import { PARAM_NAMES, paramShape, type AdamState, type SaeShape, type SaeWeights } from './jumprelu.js';

export const CHECKPOINT_FILE = 'checkpoint.safetensors';

export interface CheckpointState {
  /** Steps completed (the next step to run). */
  step: number;
  adamSteps: number[];
  loader: unknown;
  rng: number;
  /** Params that must match for a resume to be valid (shape, batch, schedule...). */
  fingerprint: Record<string, unknown>;
  /** The training loop's hooks' own state (TrainHooks.state), if any. */
  hooks?: unknown;
}

export interface Checkpoint {
  state: CheckpointState;
  weights: SaeWeights;
  adam: AdamState;
  sinceFired: Float32Array;
}

export function checkpointPath(workDir: string): string {
  return join(workDir, CHECKPOINT_FILE);
}

export function saveCheckpoint(workDir: string, shape: SaeShape, c: Checkpoint): void {
  const tensors: Record<string, NamedTensor> = {};
  for (const n of PARAM_NAMES) {
    const s = paramShape(n, shape);
    tensors[n] = { shape: s, data: c.weights[n] };
    tensors[`adam_m.${n}`] = { shape: s, data: c.adam.m[n] };
    tensors[`adam_v.${n}`] = { shape: s, data: c.adam.v[n] };
  }
  tensors.since_fired = { shape: [shape.dSae], data: c.sinceFired };
  writeSafetensors(checkpointPath(workDir), tensors, {
    state: JSON.stringify({ ...c.state, adamSteps: c.adam.steps }),
  });
}

/** The checkpoint in workDir, or null if there is none. Throws if it belongs to another run shape. */
export function loadCheckpoint(workDir: string, fingerprint: Record<string, unknown>): Checkpoint | null {
  const path = checkpointPath(workDir);
  if (!existsSync(path)) return null;
  const { tensors, metadata } = readSafetensors(path);
  const state = JSON.parse(metadata.state ?? 'null') as CheckpointState;
  if (!state) throw new Error(`${path}: no training state in its metadata`);
  const want = JSON.stringify(fingerprint),
    have = JSON.stringify(state.fingerprint);
  if (want !== have)
    throw new Error(`${path}: checkpoint is for another run (${have}), this run is ${want}; delete it to start over`);
  const get = (name: string) => {
    const t = tensors[name];
    if (!t) throw new Error(`${path}: tensor ${name} missing`);
    return t.data;
  };
  const pick = (prefix: string) =>
    Object.fromEntries(PARAM_NAMES.map((n) => [n, get(prefix + n)])) as unknown as SaeWeights;
  return {
    state,
    weights: pick(''),
    adam: { m: pick('adam_m.'), v: pick('adam_v.'), steps: state.adamSteps },
    sinceFired: get('since_fired'),
  };
}
