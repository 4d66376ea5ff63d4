/** sha256 of bytes and of files (streamed), shared by the runtime's cache keys and the domain's checksums. */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function hashFile(path: string): Promise<string> {
  const st = statSync(path);
  // Small files: one read is faster than a stream.
  if (st.size < 1 << 20) return sha256(readFileSync(path));
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest('hex');
}
