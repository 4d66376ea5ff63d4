import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, writeSafetensorsStreamed } from '../../src/data/safetensors.js';

test('safetensors: layout (LE header length, 8-byte aligned data), round trip, metadata', () => {
  const w = Float32Array.from([1, -2, 3.5, 0, 1e-8, 7]);
  const b = new Uint16Array([0x3c00, 0x8001]);
  const bytes = encodeSafetensors(
    { W: { dtype: 'F32', shape: [2, 3], data: w }, h: { dtype: 'F16', shape: [2], data: b } },
    { format: 'pt' },
  );
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal((8 + n) % 8, 0);
  const header = JSON.parse(Buffer.from(bytes.subarray(8, 8 + n)).toString());
  assert.deepEqual(header, {
    __metadata__: { format: 'pt' },
    W: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
    h: { dtype: 'F16', shape: [2], data_offsets: [24, 28] },
  });
  assert.equal(bytes.length, 8 + n + 28);
  const back = decodeSafetensors(bytes);
  assert.deepEqual(Array.from(back.tensors.W.data as Float32Array), Array.from(w));
  assert.deepEqual(Array.from(back.tensors.h.data as Uint16Array), [0x3c00, 0x8001]);
  assert.deepEqual(back.metadata, { format: 'pt' });
  // A Buffer view at an odd offset of a larger allocation (as readFileSync may return) decodes the same.
  const shifted = Buffer.concat([Buffer.alloc(3), Buffer.from(bytes)]).subarray(3);
  assert.deepEqual(Array.from(decodeSafetensors(shifted).tensors.W.data as Float32Array), Array.from(w));
  assert.throws(
    () => encodeSafetensors({ x: { dtype: 'F32', shape: [4], data: w } }),
    /tensor "x" has 24 bytes, shape \[4\] of F32 needs 16/,
  );
  assert.throws(() => decodeSafetensors(bytes.subarray(0, 40), 'cut.safetensors'), /cut\.safetensors: header length/);
});

test('safetensors streamed: the same bytes as encodeSafetensors; a tensor that fails leaves the old file whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'safetensors-stream-'));
  const path = join(dir, 'x.safetensors');
  const w = Float32Array.from([1, -2, 3.5, 0, 1e-8, 7]);
  const b = new Uint16Array([0x3c00, 0x8001]);
  const written: unknown[] = [];
  await writeSafetensorsStreamed(
    path,
    [
      {
        name: 'W',
        dtype: 'F32',
        shape: [2, 3],
        chunks: async function* () {
          yield w.subarray(0, 3);
          yield w.subarray(3);
        },
      },
      { name: 'h', dtype: 'F16', shape: [2], chunks: () => [b] },
    ],
    { format: 'pt' },
    (d) => written.push(d),
  );
  const expected = encodeSafetensors(
    { W: { dtype: 'F32', shape: [2, 3], data: w }, h: { dtype: 'F16', shape: [2], data: b } },
    { format: 'pt' },
  );
  assert.deepEqual(new Uint8Array(readFileSync(path)), expected);
  assert.equal(written.length, 3, 'each chunk handed back once written');

  const failing = writeSafetensorsStreamed(path, [
    { name: 'W', dtype: 'F32', shape: [2, 3], chunks: () => [w] },
    {
      name: 'h',
      dtype: 'F16',
      shape: [2],
      chunks: () => {
        throw new Error('parameter h is not finite');
      },
    },
  ]);
  await assert.rejects(failing, /not finite/);
  assert.deepEqual(new Uint8Array(readFileSync(path)), expected, 'the previous file is untouched');
  assert.deepEqual(readdirSync(dir), ['x.safetensors'], 'no temporary file left behind');
  await assert.rejects(
    writeSafetensorsStreamed(path, [{ name: 'W', dtype: 'F32', shape: [4], chunks: () => [w] }]),
    /tensor "W" has 24 bytes, shape \[4\] of F32 needs 16/,
  );
  rmSync(dir, { recursive: true, force: true });
});
