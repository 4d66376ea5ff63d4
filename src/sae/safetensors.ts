/**
 * The SAE's view of safetensors: float32 tensors (float64 read and converted), atomic writes.
 * The format itself is src/data/safetensors.ts; this layer only fixes the dtype.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { decodeSafetensors as decodeAny, encodeSafetensors as encodeAny, type Tensor } from '../data/safetensors.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Record<string, NamedTensor>, metadata?: Record<string, string>): Buffer {
  const typed: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`safetensors: tensor ${name} has shape [${t.shape}] but ${t.data.length} values`);
    typed[name] = { dtype: 'F32', shape: t.shape, data: t.data };
  }
  const bytes = encodeAny(typed, metadata);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface DecodedSafetensors {
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
}

export function decodeSafetensors(buf: Uint8Array, what = 'safetensors'): DecodedSafetensors {
  const file = decodeAny(buf, what);
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, t] of Object.entries(file.tensors)) {
    if (t.dtype !== 'F32' && t.dtype !== 'F64') throw new Error(`${what}: tensor ${name} has dtype ${t.dtype}; only F32 and F64 are supported`);
    tensors[name] = { shape: t.shape, data: t.data instanceof Float32Array ? t.data : Float32Array.from(t.data as Float64Array) };
  }
  return { tensors, metadata: file.metadata };
}

export function readSafetensors(path: string): DecodedSafetensors {
  return decodeSafetensors(readFileSync(path), path);
}

/** Writes atomically (temporary sibling, fsync, rename). */
export function writeSafetensors(path: string, tensors: Record<string, NamedTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
