/** Unit tests of the two progress renderings: plain timestamped lines (CI) and the live region (TTY). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createReporter, describeProgress, etaSeconds } from '../../src/runtime/progress.js';

function fakeStream(columns = 120) {
  const writes: string[] = [];
  return {
    writes,
    stream: { write: (s: string) => writes.push(s), columns, isTTY: false } as unknown as NodeJS.WriteStream,
  };
}

test('plain lines: start/finish with durations, progress throttled per stage', () => {
  const { writes, stream } = fakeStream();
  const r = createReporter(stream, { tty: false, plainIntervalMs: 10_000 });
  r.started('train[d=1]');
  for (let i = 1; i <= 50; i++)
    r.progress('train[d=1]', { fraction: i / 50, message: `step ${i}`, rate: 5300, unit: 'samples' });
  r.finished('train[d=1]', 'ran', undefined, 61_000);
  r.finished('norm', 'cached');
  r.close();
  const text = writes.join('');
  assert.match(text, /^\d\d:\d\d:\d\d start train\[d=1\]\n/);
  assert.equal(writes.filter((w) => w.includes('step ')).length, 0, 'progress lines are throttled (10 s interval)');
  assert.match(text, /\d\d:\d\d:\d\d done train\[d=1\] in 1m01s\n/);
  assert.match(text, /cached norm\n/);
});

test('plain lines: a progress line after the interval, with rate and ETA', async () => {
  const { writes, stream } = fakeStream();
  const r = createReporter(stream, { tty: false, plainIntervalMs: 0 });
  r.started('s');
  r.progress('s', { fraction: 0.5, message: 'half', rate: 12_345, unit: 'samples' });
  assert.match(writes.join(''), /s {2}50% {2}half {2}12\.3k samples\/s {2}ETA \d+ms/);
});

test('live region: one line per running stage, redrawn in place, finished lines above', async () => {
  const { writes, stream } = fakeStream(80);
  const r = createReporter(stream, { tty: true });
  r.started('a');
  r.started('b');
  r.progress('a', { fraction: 0.25, message: 'step 25/100' });
  await new Promise((res) => setTimeout(res, 150));
  const frame = writes.join('');
  assert.match(frame, /a {2}\[#####\.{15}\] 25% {2}step 25\/100/);
  assert.match(frame, /b {2}\d+ms/);
  r.finished('a', 'ran', undefined, 1500);
  const after = writes.join('');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the test reads the terminal's escape sequences
  assert.match(after, /\x1b\[2A\x1b\[J/, 'the region is cleared before printing above it');
  assert.match(after, /done a in 1\.5s\n/);
  r.close();
  assert.ok(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test reads the terminal's escape sequences
    writes.every((w) => w.split('\n').every((line) => line.replace(/\x1b\[[0-9]*[AJ]/g, '').length <= 80)),
    'lines fit the terminal',
  );
});

test("ETA: the stage's own, else from fraction and elapsed time; none at 0, at 1 or below 0.1% done", () => {
  assert.equal(etaSeconds({ fraction: 0.25 }, 10), 30);
  assert.equal(etaSeconds({ fraction: 0.25, etaSeconds: 7 }, 10), 7, "the stage's own ETA wins");
  assert.equal(etaSeconds({ message: 'no fraction' }, 10), undefined);
  assert.equal(etaSeconds({ fraction: 0 }, 10), undefined);
  assert.equal(etaSeconds({ fraction: 1 }, 10), undefined);
  assert.equal(etaSeconds({ fraction: 0.0005 }, 10), undefined, 'too early to extrapolate');
});

test('a report as text: percent, message, rate, ETA, and the elapsed time when given', () => {
  const p = { fraction: 0.4, message: 'step 400/1000', rate: 5300, unit: 'samples' };
  assert.equal(describeProgress(p, 10_000), '40%  step 400/1000  5300 samples/s  ETA 15.0s  10.0s');
  assert.equal(describeProgress({ fraction: 0.05, etaSeconds: 90 }), '5.0%  ETA 1m30s');
  assert.equal(describeProgress({ message: 'waiting' }), 'waiting');
});
