/** The hub client's HTTP layer (src/data/hub/http.ts) and Link parsing, on a local server. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff, type HttpConfig, openRequest } from '../../src/data/hub/http.js';
import { nextPageUrl } from '../../src/data/hub/api.js';
import { HubError, RetryableError } from '../../src/data/hub/errors.js';

let server: Server;
let base: string;
before(async () => {
  server = createServer((req, res) => {
    if (req.url === '/stall') {
      res.writeHead(200, { 'Content-Length': '1000' });
      return void res.write(Buffer.alloc(10));
    }
    if (req.url === '/long') {
      // 32 MiB in 64 KiB writes, so the client reads many chunks.
      res.writeHead(200, { 'Content-Length': String(512 * 65536) });
      let sent = 0;
      const more = (): void => {
        while (sent < 512) {
          sent++;
          if (!res.write(Buffer.alloc(65536, sent & 0xff))) return void res.once('drain', more);
        }
        res.end();
      };
      return more();
    }
    res.writeHead(200, { 'Content-Length': '150000' });
    res.end(Buffer.alloc(150_000, 7));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(() => {
  server.closeAllConnections();
  server.close();
});

function config(signal: AbortSignal, over: Partial<HttpConfig> = {}): HttpConfig {
  return {
    hubOrigin: base,
    timeoutMs: 5000,
    maxRetries: 2,
    backoffBaseMs: 1,
    backoffMaxMs: 5,
    signal,
    log: () => {},
    ...over,
  };
}

test('an abort after the whole body arrived, before its end was read, still ends the read', async () => {
  // undici leaves read() pending forever in exactly this state; the client must not hang.
  const controller = new AbortController();
  const open = await openRequest(config(controller.signal), `${base}/full`);
  const chunks = open.chunks();
  let bytes = 0;
  while (bytes < 150_000) bytes += (await chunks.next()).value!.length;
  controller.abort();
  const outcome = await Promise.race([
    chunks.next().then(
      () => 'settled',
      (err: Error) => err.name,
    ),
    new Promise((r) => setTimeout(() => r('hung'), 2000)),
  ]);
  assert.ok(outcome === 'AbortError' || outcome === 'settled', `read ended: ${outcome}`);
});

test('chunks already read are not retained while the body streams (bounded memory)', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const open = await openRequest(config(new AbortController().signal), `${base}/long`);
  const firstChunks: WeakRef<Uint8Array>[] = [];
  let bytes = 0;
  let collectedMidway: boolean | undefined;
  for await (const chunk of open.chunks()) {
    if (firstChunks.length < 8) firstChunks.push(new WeakRef(chunk));
    bytes += chunk.length;
    if (collectedMidway === undefined && bytes > 16 * 1024 * 1024) {
      await sleep(1); // WeakRef targets live until the current job ends
      gc();
      collectedMidway = firstChunks.every((r) => r.deref() === undefined);
    }
  }
  assert.equal(bytes, 512 * 65536);
  assert.equal(collectedMidway, true, 'the first chunks were garbage-collected before the body ended');
});

test('no data for timeoutMs is a retryable timeout', async () => {
  const open = await openRequest(config(new AbortController().signal, { timeoutMs: 200 }), `${base}/stall`);
  await assert.rejects(
    (async () => {
      for await (const _ of open.chunks());
    })(),
    (err: Error) => err instanceof RetryableError && /timeout: no data for 0\.2 s reading the body/.test(err.message),
  );
});

test('backoff gives up after max_retries with a final error', async () => {
  const logs: string[] = [];
  const backoff = new Backoff(config(new AbortController().signal, { log: (m) => logs.push(m) }));
  const err = new RetryableError('HTTP 503');
  await backoff.wait(err, 'x');
  await backoff.wait(err, 'x');
  await assert.rejects(
    backoff.wait(err, 'x'),
    (e: Error) => e instanceof HubError && /giving up after 3 attempts/.test(e.message),
  );
  assert.deepEqual(
    logs.map((l) => /retry (\d)\/2/.exec(l)![1]),
    ['1', '2'],
  );
});

test('Link rel="next" is found among other rels and resolved against the page URL', () => {
  const page = 'https://hub.example/api/datasets/a/b/tree/main?recursive=true';
  assert.equal(
    nextPageUrl('<https://hub.example/api/x?cursor=abc>; rel="next"', page),
    'https://hub.example/api/x?cursor=abc',
  );
  assert.equal(
    nextPageUrl('</api/x?cursor=1>; rel="prev", </api/x?cursor=3>; rel="next"', page),
    'https://hub.example/api/x?cursor=3',
  );
  assert.equal(nextPageUrl('<https://hub.example/api/x?cursor=1>; rel="prev"', page), undefined);
  assert.equal(nextPageUrl(null, page), undefined);
});
