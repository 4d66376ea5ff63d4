/**
 * The SAELens folder layout: `cfg.json` + `sae_weights.safetensors` (W_enc [d_in, d_sae],
 * W_dec [d_sae, d_in], b_enc, b_dec, threshold; float32).
 *
 * Training sees x / s (s = norm_scale). The file must work on RAW activations, so the
 * normalisation is folded in: with W_enc' = W_enc / s, b_dec' = s b_dec, W_dec' = s W_dec,
 *   z' = (x - b_dec') W_enc' + b_enc = (x/s - b_dec) W_enc + b_enc = z    (same gate, same threshold)
 *   x_hat' = f W_dec' + b_dec' = s (f W_dec + b_dec) = s x_hat.
 * b_enc and threshold are unchanged. (Without the pre-encoder bias the same holds.)
 */
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from './safetensors.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import type { SaeWeights } from './jumprelu.js';

export const SAE_WEIGHTS_FILE = 'sae_weights.safetensors';
export const SAE_CFG_FILE = 'cfg.json';

/** Weights as SAELens stores them: raw-activation units, threshold itself (not its log). */
export interface SaeLensWeights {
  W_enc: Float32Array;
  W_dec: Float32Array;
  b_enc: Float32Array;
  b_dec: Float32Array;
  threshold: Float32Array;
}

export interface SaeLensMeta {
  dIn: number;
  dSae: number;
  applyBDecToInput: boolean;
  modelName: string;
  hookName: string;
  datasetPath: string;
  /** Tokens per sequence the activations came from; null when unknown (SAELens's evaluation then raises). */
  contextSize: number | null;
  /** Extra, informative metadata (norm_scale, training params...). */
  extra?: Record<string, unknown>;
}

/** Normalised-unit training weights -> raw-unit SAELens weights (see the file comment). */
export function foldNormalisation(w: SaeWeights, normScale: number): SaeLensWeights {
  const s = normScale;
  return {
    W_enc: w.W_enc.map((v) => v / s),
    W_dec: w.W_dec.map((v) => v * s),
    b_enc: new Float32Array(w.b_enc),
    b_dec: w.b_dec.map((v) => v * s),
    threshold: w.log_threshold.map((v) => Math.exp(v)),
  };
}

/**
 * Raw-unit SAELens weights -> training weights for inputs divided by `normScale`, with every
 * decoder row rescaled to unit norm (the training constraint). For JumpReLU that rescaling is
 * exact: scaling feature j's decoder row by 1/n_j and its encoder column, b_enc_j and
 * threshold_j by n_j leaves the gate and the reconstruction unchanged.
 */
export function unfoldNormalisation(w: SaeLensWeights, normScale: number, dIn: number, dSae: number): SaeWeights {
  const s = normScale;
  const W_enc = w.W_enc.map((v) => v * s);
  const W_dec = w.W_dec.map((v) => v / s);
  const b_enc = new Float32Array(w.b_enc);
  const threshold = new Float32Array(w.threshold);
  for (let j = 0; j < dSae; j++) {
    const row = W_dec.subarray(j * dIn, (j + 1) * dIn);
    let n = 0;
    for (const v of row) n += v * v;
    n = Math.sqrt(n);
    if (!(n > 0)) continue; // a zero decoder row cannot be normalised; training will fix its direction
    for (let k = 0; k < dIn; k++) row[k] /= n;
    for (let i = 0; i < dIn; i++) W_enc[i * dSae + j] *= n;
    b_enc[j] *= n;
    threshold[j] *= n;
  }
  return {
    W_enc,
    b_enc,
    W_dec,
    b_dec: w.b_dec.map((v) => v / s),
    // log(0) would be -Infinity: clamp a zero threshold to the smallest normal float32.
    log_threshold: threshold.map((t) => Math.log(Math.max(t, 1.2e-38))),
  };
}

export function writeSaeLens(dir: string, w: SaeLensWeights, meta: SaeLensMeta): void {
  mkdirSync(dir, { recursive: true });
  const { dIn, dSae } = meta;
  writeSafetensors(join(dir, SAE_WEIGHTS_FILE), {
    W_enc: { shape: [dIn, dSae], data: w.W_enc },
    W_dec: { shape: [dSae, dIn], data: w.W_dec },
    b_enc: { shape: [dSae], data: w.b_enc },
    b_dec: { shape: [dIn], data: w.b_dec },
    threshold: { shape: [dSae], data: w.threshold },
  });
  const cfg = {
    architecture: 'jumprelu',
    d_in: dIn,
    d_sae: dSae,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: meta.applyBDecToInput,
    normalize_activations: 'none',
    reshape_activations: 'none',
    metadata: {
      sae_lens_version: '6.0.0',
      sae_lens_training_version: null,
      model_name: meta.modelName,
      hook_name: meta.hookName,
      hook_head_index: null,
      dataset_path: meta.datasetPath,
      context_size: meta.contextSize,
      prepend_bos: true,
      model_from_pretrained_kwargs: {},
      ...(meta.extra ?? {}),
    },
  };
  writeFileAtomic(join(dir, SAE_CFG_FILE), JSON.stringify(cfg, null, 2) + '\n');
}

export interface LoadedSaeLens {
  cfg: Record<string, any>;
  dIn: number;
  dSae: number;
  applyBDecToInput: boolean;
  weights: SaeLensWeights;
}

export const SAE_SCALER_FILE = 'activation_scaler.json';

/**
 * SAELens's `normalize_activations`, so that the loaded weights compute the file's function on
 * raw activations, or a clear error. `expected_average_only_in` multiplies inputs by the constant
 * in activation_scaler.json: folded into the weights as SAELens's fold_activation_norm_scaling_factor
 * does (W_enc * s, W_dec / s, b_dec / s). `constant_norm_rescale` and `layer_norm` rescale each
 * input by its own norm or statistics: no fixed weights compute that, so they are refused.
 */
function applyInputNormalisation(dir: string, cfg: Record<string, any>, w: SaeLensWeights): void {
  const mode = cfg.normalize_activations ?? 'none';
  if (mode === 'none') return;
  const cfgPath = join(dir, SAE_CFG_FILE);
  if (mode !== 'expected_average_only_in') {
    throw new Error(
      `${cfgPath}: normalize_activations is ${JSON.stringify(mode)}: this SAE rescales each input by its own statistics, ` +
        'which train-sae cannot reproduce; supported: "none", "expected_average_only_in" (with activation_scaler.json)',
    );
  }
  const scalerPath = join(dir, SAE_SCALER_FILE);
  if (!existsSync(scalerPath))
    throw new Error(`${cfgPath}: normalize_activations is "expected_average_only_in" but ${scalerPath} is missing`);
  const s = JSON.parse(readFileSync(scalerPath, 'utf8'))?.scaling_factor;
  if (typeof s !== 'number' || !(s > 0) || !Number.isFinite(s)) {
    throw new Error(`${scalerPath}: scaling_factor must be a positive number, got ${JSON.stringify(s)}`);
  }
  for (let i = 0; i < w.W_enc.length; i++) w.W_enc[i] *= s;
  for (let i = 0; i < w.W_dec.length; i++) w.W_dec[i] /= s;
  for (let i = 0; i < w.b_dec.length; i++) w.b_dec[i] /= s;
}

/** Reads an SAELens JumpReLU folder, with clear errors for anything we cannot use. */
export function readSaeLens(dir: string): LoadedSaeLens {
  const cfgPath = join(dir, SAE_CFG_FILE);
  const wPath = join(dir, SAE_WEIGHTS_FILE);
  for (const p of [cfgPath, wPath]) if (!existsSync(p)) throw new Error(`SAE folder ${dir}: missing ${p}`);
  const cfg = JSON.parse(readFileSync(cfgPath, 'utf8'));
  const arch = cfg.architecture ?? cfg.metadata?.architecture;
  if (arch !== undefined && arch !== 'jumprelu')
    throw new Error(`${cfgPath}: architecture is ${JSON.stringify(arch)}, expected "jumprelu"`);
  const dIn = cfg.d_in,
    dSae = cfg.d_sae;
  if (!Number.isInteger(dIn) || !Number.isInteger(dSae))
    throw new Error(`${cfgPath}: d_in / d_sae missing or not integers`);
  const { tensors } = readSafetensors(wPath);
  const expect: Record<keyof SaeLensWeights, number[]> = {
    W_enc: [dIn, dSae],
    W_dec: [dSae, dIn],
    b_enc: [dSae],
    b_dec: [dIn],
    threshold: [dSae],
  };
  const weights = {} as SaeLensWeights;
  for (const [name, shape] of Object.entries(expect) as Array<[keyof SaeLensWeights, number[]]>) {
    const t = tensors[name];
    if (!t) throw new Error(`${wPath}: tensor ${name} missing`);
    if (t.shape.join(',') !== shape.join(','))
      throw new Error(`${wPath}: ${name} has shape [${t.shape}], cfg.json says [${shape}]`);
    weights[name] = t.data;
  }
  applyInputNormalisation(dir, cfg, weights);
  return { cfg, dIn, dSae, applyBDecToInput: cfg.apply_b_dec_to_input ?? true, weights };
}
