/**
 * safetensors, float32 (read: also float64, converted): 8-byte little-endian header length N, then N
 * bytes of JSON header `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}`
 * padded with spaces to a multiple of 8, then the tensors' bytes (offsets relative to the end
 * of the header), packed in header order.
 */
import { readFileSync, writeFileSync, renameSync, openSync, fsyncSync, closeSync } from 'node:fs';

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface NamedTensor {
  shape: number[];
  data: Float32Array;
}

export function encodeSafetensors(tensors: Record<string, NamedTensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) throw new Error(`safetensors: tensor ${name} has shape [${t.shape}] but ${t.data.length} values`);
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * n] };
    offset += 4 * n;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let pos = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    if (LITTLE_ENDIAN_HOST) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), pos);
      pos += t.data.byteLength;
    } else {
      for (let i = 0; i < t.data.length; i++, pos += 4) out.writeFloatLE(t.data[i], pos);
    }
  }
  return out;
}

export interface DecodedSafetensors {
  tensors: Record<string, NamedTensor>;
  metadata: Record<string, string>;
}

export function decodeSafetensors(buf: Buffer, what = 'safetensors'): DecodedSafetensors {
  if (buf.length < 8) throw new Error(`${what}: file too short (${buf.length} bytes)`);
  const n = Number(buf.readBigUInt64LE(0));
  if (8 + n > buf.length) throw new Error(`${what}: header length ${n} exceeds file size ${buf.length}`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  } catch (e) {
    throw new Error(`${what}: header is not JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const tensors: Record<string, NamedTensor> = {};
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets as [number, number];
    const count = (info.shape as number[]).reduce((a, b) => a * b, 1);
    const width = info.dtype === 'F32' ? 4 : info.dtype === 'F64' ? 8 : 0;
    if (!width) throw new Error(`${what}: tensor ${name} has dtype ${info.dtype}; only F32 and F64 are supported`);
    if (end - begin !== width * count || dataStart + end > buf.length) {
      throw new Error(`${what}: tensor ${name} offsets [${begin}, ${end}] do not match shape [${info.shape}] / file size`);
    }
    const data = new Float32Array(count);
    const at = dataStart + begin;
    if (width === 8) for (let i = 0; i < count; i++) data[i] = buf.readDoubleLE(at + 8 * i);
    else if (LITTLE_ENDIAN_HOST) new Uint8Array(data.buffer).set(buf.subarray(at, at + 4 * count));
    else for (let i = 0; i < count; i++) data[i] = buf.readFloatLE(at + 4 * i);
    tensors[name] = { shape: info.shape, data };
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

export function readSafetensors(path: string): DecodedSafetensors {
  return decodeSafetensors(readFileSync(path), path);
}

/** Writes atomically: to `path.tmp`, fsync, then rename over `path`. */
export function writeSafetensors(path: string, tensors: Record<string, NamedTensor>, metadata?: Record<string, string>): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function writeFileAtomic(path: string, bytes: Buffer | string): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, bytes);
  const fd = openSync(tmp, 'r');
  fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, path);
}
