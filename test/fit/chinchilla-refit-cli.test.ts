/**
 * Acceptance through the runtime: `pipeline run pipelines/chinchilla-refit.yaml` (the CLI
 * in dist/) reproduces Besiroglu et al.'s fit, and a second run is a cache hit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const within = (v: number, expected: number, rel: number, k: string) =>
  assert.ok(Math.abs(v - expected) <= rel * expected, `${k} = ${v}, expected ${expected} within ${rel * 100}%`);

test('pipelines/chinchilla-refit.yaml reproduces Besiroglu et al. through the CLI', () => {
  // The runner writes a lock file beside the pipeline: run a copy laid out like the
  // repository (pipelines/ and data/chinchilla/), so the test leaves the checkout untouched.
  const work = mkdtempSync(join(tmpdir(), 'chinchilla-refit-'));
  mkdirSync(join(work, 'pipelines'));
  mkdirSync(join(work, 'data', 'chinchilla'), { recursive: true });
  copyFileSync(join(root, 'pipelines', 'chinchilla-refit.yaml'), join(work, 'pipelines', 'chinchilla-refit.yaml'));
  copyFileSync(
    join(root, 'data', 'chinchilla', 'svg_extracted_data.csv'),
    join(work, 'data', 'chinchilla', 'svg_extracted_data.csv'),
  );
  const artifacts = join(work, 'artifacts');
  // stdout carries `show --json`; the run summary goes to stderr: return both.
  const cli = (...args: string[]) => {
    const r = spawnSync(
      process.execPath,
      [join(root, 'dist', 'src', 'cli.js'), ...args, '--artifacts', artifacts, '--set', 'bootstrap=20'],
      { cwd: work, encoding: 'utf8' },
    );
    assert.equal(r.status, 0, `pipeline ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
    return { out: r.stdout, all: r.stdout + r.stderr };
  };
  cli('run', 'pipelines/chinchilla-refit.yaml');
  const shown = JSON.parse(cli('show', 'pipelines/chinchilla-refit.yaml', 'refit', '--json').out);
  assert.match(shown.fit, /fit\.json$/);
  const fit = JSON.parse(readFileSync(shown.fit, 'utf8'));
  assert.equal(fit.law, 'chinchilla');
  assert.equal(fit.points.filter((p: { kept: boolean }) => p.kept).length, 240);
  within(fit.params.E, 1.8172, 0.01, 'E');
  within(fit.params.alpha, 0.3473, 0.01, 'alpha');
  within(fit.params.beta, 0.3672, 0.01, 'beta');
  within(fit.params.A, 477.9, 0.03, 'A');
  within(fit.params.B, 2143, 0.03, 'B');
  assert.equal(fit.optimal_data.length, 2);
  assert.ok(
    fit.warnings.some((w: string) => /extrapolation/.test(w)),
    'Chinchilla-70B lies beyond the data: flagged',
  );
  const again = cli('run', 'pipelines/chinchilla-refit.yaml');
  assert.match(again.all, /0 ran, 1 cached/);
});
