/**
 * A full disk, on a small tmpfs (skipped with a message where mounting is not allowed): taking
 * an entry lock fails cleanly instead of leaving an empty lock that looks held forever, and a
 * lock file that cannot be written at the end of a run is a clear error with exit 1. After
 * space is freed, the next run finishes from the cache.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cli, count, makeProject } from '../runtime/helpers.js';

/** A 2 MiB tmpfs, or undefined (with the reason) where this process may not mount one. */
function smallTmpfs(): { dir: string; unmount(): void } | string {
  const dir = mkdtempSync(join(tmpdir(), 'faults-tmpfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()})`;
  return { dir, unmount: () => spawnSync('umount', ['-l', dir]) };
}

/** Fills the file system holding `dir` to the last byte. */
function fill(dir: string): string {
  const filler = join(dir, 'filler');
  try {
    writeFileSync(filler, Buffer.alloc(4 << 20, 1));
  } catch (e) {
    assert.equal((e as NodeJS.ErrnoException).code, 'ENOSPC');
  }
  return filler;
}

const ONE = `stages:
  one:
    uses: shell
    with:
      cmd: "${count('one')}; echo one > $OUT/o.txt"
      outputs: { o: o.txt }
`;

test('disk full when taking an entry lock: a clear failure, and no lock left held forever', {
  timeout: 120_000,
}, async (t) => {
  const fs = smallTmpfs();
  if (typeof fs === 'string') return t.skip(fs);
  try {
    const p = makeProject('faults-disk-');
    p.write('pipelines/one.yaml', ONE);
    const art = join(fs.dir, 'artifacts');
    mkdirSync(join(art, 'locks'), { recursive: true });
    const filler = fill(fs.dir);
    const full = await cli(['run', 'one', '--artifacts', art], p.dir);
    assert.equal(full.code, 1, full.stderr);
    assert.match(full.stderr, /cannot take the lock .*no space left on device/i);
    assert.doesNotMatch(full.stderr, /internal error|\n\s+at /);
    assert.deepEqual(readdirSync(join(art, 'locks')), [], 'no empty lock file left behind');
    rmSync(filler);
    const again = await cli(['run', 'one', '--artifacts', art], p.dir);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(p.count('one'), 1);
  } finally {
    fs.unmount();
  }
});

test('disk full at the end of a run: exit 1 naming the lock file, then the next run is all cached', {
  timeout: 120_000,
}, async (t) => {
  const fs = smallTmpfs();
  if (typeof fs === 'string') return t.skip(fs);
  try {
    // The pipeline folder (where the lock file goes) is on the tmpfs; the cache is not.
    const p = makeProject('faults-disk-');
    const pipelines = join(fs.dir, 'pipelines');
    mkdirSync(pipelines);
    writeFileSync(
      join(pipelines, 'one.yaml'),
      ONE.replace('$PIPELINE_DIR/../counts/one', `${p.dir}/counts/one`).replace(
        'echo one > $OUT/o.txt',
        `echo one > $OUT/o.txt; head -c 4000000 /dev/zero > ${fs.dir}/filler 2>/dev/null; true`,
      ),
    );
    const art = join(p.dir, 'artifacts');
    const full = await cli(['run', join(pipelines, 'one.yaml'), '--artifacts', art], p.dir);
    assert.equal(full.code, 1, full.stderr);
    assert.match(
      full.stderr,
      /cannot write the lock file .*one\.lock\.json: .*no space left on device.*the results are in the cache/i,
    );
    assert.doesNotMatch(full.stderr, /internal error|\n\s+at /);
    rmSync(join(fs.dir, 'filler'));
    const again = await cli(['run', join(pipelines, 'one.yaml'), '--artifacts', art], p.dir);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /0 ran, 1 cached/);
    assert.equal(p.count('one'), 1);
    assert.ok(JSON.parse(readFileSync(join(pipelines, 'one.lock.json'), 'utf8')).instances.one);
  } finally {
    fs.unmount();
  }
});
