/** Types of parity-reference.mjs (plain JavaScript, so that bench/gpu-check.mjs runs without a build). */
export type ParamName = 'W_enc' | 'b_enc' | 'W_dec' | 'b_dec' | 'log_threshold';
export interface Shape {
  dIn: number;
  dSae: number;
}
export interface Config extends Shape {
  applyBDecToInput: boolean;
  bandwidth: number;
}
type Arrays<T> = Record<ParamName, T>;
/** A training state as the engines' getState / setState pass it. */
export interface State {
  weights: Arrays<Float32Array>;
  adam: { m: Arrays<Float32Array>; v: Arrays<Float32Array>; steps: number[] };
  sinceFired: Float32Array;
}
/** The same state in float64, as the reference step updates it. */
export interface RefState {
  p: Arrays<Float64Array>;
  m: Arrays<Float64Array>;
  v: Arrays<Float64Array>;
  steps: number[];
  sinceFired: Float64Array;
}
export const PARAM_NAMES: ParamName[];
export const ADAM_GROUPS: Array<{ params: ParamName[]; beta1: number; beta2: number; lrScale: number }>;
export const ADAM_EPS: number;
export function mulberry32(seed: number): () => number;
export function seedWeights(cfg: Shape, thresholdInit: number, rng: () => number): Arrays<Float32Array>;
export function startState(cfg: Shape, rng: () => number): State;
export function batch(rng: () => number, rows: number, dIn: number): Float32Array;
export function toRef(s: State): RefState;
export function referenceStep(
  cfg: Config,
  st: RefState,
  x: Float32Array,
  B: number,
  lambda: number,
  lr: number,
): {
  rec: number;
  l0: number;
  totalVar: number;
  fired: Float64Array;
  windowHits: number;
  sqErr: number;
  active: number;
};
export function stateDiff(a: State, b: State | RefState): { worst: number; worstWeights: number; where: string };
