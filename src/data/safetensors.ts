/**
 * A small safetensors writer and reader (https://github.com/huggingface/safetensors):
 * 8-byte little-endian header length N, N bytes of JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}` padded with
 * spaces so the data starts 8-byte aligned, then the tensors' bytes back to back, little-endian.
 * Output is deterministic: tensors are written in the order given.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { writeFileAtomicWith } from '../util/atomic-write.js';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

type TensorData =
  | Float64Array
  | Float32Array
  | Uint16Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface Tensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** F16 and BF16 are raw 16-bit patterns (Uint16Array); BOOL is Uint8Array. */
  data: TensorData;
}

const BYTES: Record<SafetensorsDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** A tensor's description in the header, without its bytes. */
export interface TensorHeader {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/**
 * The bytes before the data (8-byte length, JSON header padded so the data starts 8-byte
 * aligned) and each tensor's byte length, in the order given.
 */
function encodeHeader(entries: TensorHeader[], metadata?: Record<string, string>) {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  const sizes: number[] = [];
  for (const { name, dtype, shape } of entries) {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is not a valid tensor name');
    const bytes = shape.reduce((a, b) => a * b, 1) * BYTES[dtype];
    header[name] = { dtype, shape, data_offsets: [offset, offset + bytes] };
    sizes.push(bytes);
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(head.length - 8), 0);
  head.write(json, 8, 'utf8');
  return { head, sizes, dataBytes: offset };
}

function checkSize(name: string, t: { dtype: SafetensorsDtype; shape: number[] }, data: TensorData, bytes: number) {
  if (data.byteLength !== bytes)
    throw new Error(
      `safetensors: tensor "${name}" has ${data.byteLength} bytes, shape [${t.shape}] of ${t.dtype} needs ${bytes}`,
    );
}

const bytesOf = (d: TensorData) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** Builds the bytes of a safetensors file. */
export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Uint8Array {
  const entries = Object.entries(tensors).map(([name, t]) => ({ name, ...t }));
  const { head, sizes, dataBytes } = encodeHeader(entries, metadata);
  const out = new Uint8Array(head.length + dataBytes);
  out.set(head, 0);
  let at = head.length;
  entries.forEach((t, i) => {
    checkSize(t.name, t, t.data, sizes[i]);
    out.set(bytesOf(t.data), at);
    at += sizes[i];
  });
  return out;
}

export function writeSafetensors(
  path: string,
  tensors: Record<string, Tensor>,
  metadata?: Record<string, string>,
): void {
  writeFileSync(path, encodeSafetensors(tensors, metadata));
}

/** A tensor to stream: its bytes are asked for only when its turn comes, in one or more chunks. */
export interface StreamedTensor extends TensorHeader {
  chunks: () => Iterable<TensorData> | AsyncIterable<TensorData>;
}

/**
 * Writes a safetensors file atomically, chunk by chunk: memory holds one chunk, not the file (a
 * checkpoint of the seed's final SAE is 800 MB). The bytes equal encodeSafetensors'.
 */
export async function writeSafetensorsStreamed(
  path: string,
  entries: StreamedTensor[],
  metadata?: Record<string, string>,
  /** Called with each chunk once written (e.g. to free a copy made for this write). */
  written?: (chunk: TensorData) => void,
): Promise<void> {
  const { head, sizes } = encodeHeader(entries, metadata);
  await writeFileAtomicWith(path, async (fd) => {
    writeFileSync(fd, head);
    for (const [i, t] of entries.entries()) {
      let bytes = 0;
      for await (const chunk of t.chunks()) {
        bytes += chunk.byteLength;
        if (bytes > sizes[i]) break;
        writeFileSync(fd, bytesOf(chunk));
        written?.(chunk);
      }
      if (bytes !== sizes[i])
        throw new Error(
          `safetensors: tensor "${t.name}" has ${bytes} bytes, shape [${t.shape}] of ${t.dtype} needs ${sizes[i]}`,
        );
    }
  });
}

export interface SafetensorsFile {
  tensors: Record<string, Tensor>;
  metadata: Record<string, string>;
}

/** Parses safetensors bytes; clear errors name `source` (a path) and the offending entry. */
export function decodeSafetensors(bytes: Uint8Array, source = '<bytes>'): SafetensorsFile {
  if (bytes.length < 8) throw new Error(`${source}: not a safetensors file (${bytes.length} bytes)`);
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) throw new Error(`${source}: header length ${n} exceeds the file (${bytes.length} bytes)`);
  let header: Record<string, any>;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, n).toString('utf8'));
  } catch (e) {
    throw new Error(`${source}: header is not valid JSON (${(e as Error).message})`);
  }
  const dataStart = 8 + n;
  const tensors: Record<string, Tensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const {
      dtype,
      shape,
      data_offsets: [begin, end],
    } = entry as { dtype: SafetensorsDtype; shape: number[]; data_offsets: [number, number] };
    if (!(dtype in BYTES)) throw new Error(`${source}: tensor "${name}" has unsupported dtype ${dtype}`);
    const count = shape.reduce((a, b) => a * b, 1);
    if (end - begin !== count * BYTES[dtype] || dataStart + end > bytes.length) {
      throw new Error(
        `${source}: tensor "${name}" offsets [${begin}, ${end}] do not match shape [${shape}] ${dtype} or the file size`,
      );
    }
    // Copy out (Buffer#slice would share memory): the data need not be aligned for its dtype in place.
    const slice = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end));
    tensors[name] = { dtype, shape, data: view(dtype, slice.buffer) };
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

export function readSafetensors(path: string): SafetensorsFile {
  return decodeSafetensors(readFileSync(path), path);
}

function view(dtype: SafetensorsDtype, buf: ArrayBuffer): TensorData {
  switch (dtype) {
    case 'F64':
      return new Float64Array(buf);
    case 'F32':
      return new Float32Array(buf);
    case 'F16':
    case 'BF16':
      return new Uint16Array(buf);
    case 'I64':
      return new BigInt64Array(buf);
    case 'I32':
      return new Int32Array(buf);
    case 'I16':
      return new Int16Array(buf);
    case 'I8':
      return new Int8Array(buf);
    case 'U8':
    case 'BOOL':
      return new Uint8Array(buf);
  }
}
