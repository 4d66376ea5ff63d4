/**
 * Page decompression. zstd, snappy, brotli and lz4 come from hyparquet-compressors (pure JS /
 * wasm, no native build); gzip uses node's zlib, which is native and several times faster.
 */
import { gunzipSync } from 'node:zlib';
import type { CompressionCodec } from 'hyparquet';
import { compressors, decompressZstd } from 'hyparquet-compressors';
import { CorruptPageError } from './hybrid.js';

export function decompress(input: Uint8Array, codec: CompressionCodec, size: number): Uint8Array {
  let out: Uint8Array;
  switch (codec) {
    case 'UNCOMPRESSED':
      out = input;
      break;
    case 'ZSTD':
      out = decompressZstd(input, new Uint8Array(size));
      break;
    case 'GZIP':
      out = gunzipSync(input);
      break;
    default: {
      const fn = compressors[codec];
      if (!fn) throw new Error(`compression codec ${codec} is not supported`);
      out = fn(input, size);
    }
  }
  if (out.length !== size) {
    throw new CorruptPageError(`${codec} page decompressed to ${out.length} bytes, header says ${size}`);
  }
  return out;
}
