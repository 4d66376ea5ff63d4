/**
 * The SAE's view of safetensors: float32 tensors (float64, float16 and bfloat16 read and
 * converted exactly), atomic writes. The format itself is src/data/safetensors.ts; this layer
 * only fixes the dtype.
 */
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../util/atomic-write.js';
import { decodeSafetensors as decodeAny, encodeSafetensors as encodeAny, type Tensor } from '../data/safetensors.js';
import { halvesToFloats } from '../data/float16.js';

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Record<string, NamedTensor>, metadata?: Record<string, string>): Buffer {
  const typed: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length)
      throw new Error(`safetensors: tensor ${name} has shape [${t.shape}] but ${t.data.length} values`);
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
  for (const [name, t] of Object.entries(file.tensors))
    tensors[name] = { shape: t.shape, data: asFloat32(t, `${what}: tensor ${name}`) };
  return { tensors, metadata: file.metadata };
}

/** Float tensors as float32: every F16 and BF16 value is exact in float32; F64 is rounded. */
function asFloat32(t: Tensor, what: string): Float32Array {
  switch (t.dtype) {
    case 'F32':
      return t.data as Float32Array;
    case 'F64':
      return Float32Array.from(t.data as Float64Array);
    case 'F16':
      return halvesToFloats(t.data as Uint16Array);
    case 'BF16': {
      // bfloat16 is the top half of a float32.
      const bits = new Uint32Array(t.data.length);
      for (let i = 0; i < bits.length; i++) bits[i] = (t.data as Uint16Array)[i] << 16;
      return new Float32Array(bits.buffer);
    }
    default:
      throw new Error(`${what} has dtype ${t.dtype}; only F32, F64, F16 and BF16 are supported`);
  }
}

export function readSafetensors(path: string): DecodedSafetensors {
  return decodeSafetensors(readFileSync(path), path);
}

/** Writes atomically (temporary sibling, fsync, rename). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, NamedTensor>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}
