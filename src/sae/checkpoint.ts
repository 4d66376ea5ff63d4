/**
 * Training checkpoints in the stage's workDir: one safetensors file holding the weights, both
 * Adam moments of every parameter and the dead-feature counters, with the rest of the state
 * (step, Adam step counts, loader cursor, RNG state, a fingerprint of the run's shape) as JSON
 * in the header metadata. One file, written to .tmp then renamed: a kill leaves either the
 * previous checkpoint or the new one, never half of one.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from './safetensors.js';
import { writeSafetensorsStreamed, type StreamedTensor } from '../data/safetensors.js';
import { stateReader, type SaeEngine, type StatePath, type StateReader } from './engine.js';
import { freeNow } from '../util/free-now.js';
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

/**
 * Writes the engine's checkpoint, streaming its state array by array (a second copy of an
 * 800 MB model would double the training's memory). A non-finite weight aborts the write: the
 * previous checkpoint stays.
 */
export async function saveEngineCheckpoint(
  workDir: string,
  shape: SaeShape,
  engine: SaeEngine,
  state: Omit<CheckpointState, 'adamSteps'>,
  /** Named in the error when a weight is not finite, e.g. "step 2000" or "none". */
  lastGood: string,
): Promise<void> {
  const reader = await stateReader(engine);
  const tensor = (name: string, path: StatePath, shape: number[], finite = false): StreamedTensor => ({
    name,
    dtype: 'F32',
    shape,
    chunks: async function* () {
      for await (const chunk of arrayChunks(reader, path, shape)) {
        if (finite && !allFinite(chunk))
          throw new Error(
            `train-sae: parameter ${name} is not finite after step ${state.step}; not checkpointing ` +
              `(last good checkpoint: ${lastGood})`,
          );
        yield chunk;
      }
    },
  });
  const entries = PARAM_NAMES.flatMap((n) => {
    const s = paramShape(n, shape);
    return [
      tensor(n, `weights.${n}`, s, true),
      tensor(`adam_m.${n}`, `adam.m.${n}`, s),
      tensor(`adam_v.${n}`, `adam.v.${n}`, s),
    ];
  });
  entries.push(tensor('since_fired', 'sinceFired', [shape.dSae]));
  const metadata = { state: JSON.stringify({ ...state, adamSteps: reader.adamSteps }) };
  // Each chunk is a copy made for this write (where the engine reads ranges): freed once written.
  await writeSafetensorsStreamed(checkpointPath(workDir), entries, metadata, reader.range ? freeNow : undefined);
}

/** Floats per chunk of a streamed checkpoint (16 MiB), rounded down to whole rows. */
const CHUNK_FLOATS = 1 << 22;

async function* arrayChunks(reader: StateReader, path: StatePath, shape: number[]): AsyncIterable<Float32Array> {
  if (!reader.range) {
    yield await reader.array(path);
    return;
  }
  const total = shape.reduce((a, b) => a * b, 1);
  const row = shape[shape.length - 1];
  const step = Math.max(1, Math.floor(CHUNK_FLOATS / row)) * row;
  for (let offset = 0; offset < total; offset += step)
    yield await reader.range(path, offset, Math.min(step, total - offset));
}

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] - a[i] !== 0) return false; // NaN or +-Infinity
  return true;
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
