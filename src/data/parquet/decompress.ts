/**
 * Page decompression.
 * - zstd: zstddec (the reference zstd decoder compiled to WebAssembly). hyparquet-compressors'
 *   zstd is fzstd (pure JS), which decoded the hub layout's pages at ~14 MB/s against ~200 MB/s
 *   for zstddec on this machine (same pages, same run): at 2 bytes a value, fzstd alone would
 *   cap ingest at ~7M values/s. Node 20's zlib has no zstd.
 * - gzip: node's zlib (native).
 * - snappy, brotli, lz4: hyparquet-compressors.
 */
import { gunzipSync } from 'node:zlib';
import type { CompressionCodec } from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { ZSTDDecoder } from 'zstddec';
import { CorruptPageError } from './hybrid.js';

const zstd = new ZSTDDecoder();
await zstd.init();

export function decompress(input: Uint8Array, codec: CompressionCodec, size: number): Uint8Array {
  let out: Uint8Array;
  switch (codec) {
    case 'UNCOMPRESSED':
      out = input;
      break;
    case 'ZSTD':
      out = decodeZstd(input, size);
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

function decodeZstd(input: Uint8Array, size: number): Uint8Array {
  try {
    return zstd.decode(input, size);
  } catch (err) {
    throw new CorruptPageError(`zstd page does not decompress: ${(err as Error).message}`);
  }
}
