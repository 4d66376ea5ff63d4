/**
 * Acceptance: the grid fit on Besiroglu et al.'s 240 kept Chinchilla runs reproduces their
 * numbers (scipy reference in data/chinchilla/README.md), called directly through the fit
 * function on the committed CSV with the default 4,500-start grid.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fitLaw } from '../../src/fit/fit.js';
import { applyFilters, checkPositive, pointsFromCsv } from '../../src/fit/points.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const CHINCHILLA_CSV = join(root, 'data', 'chinchilla', 'svg_extracted_data.csv');

export function assertBesiroglu(p: Record<string, number | null>): void {
  const within = (k: string, expected: number, rel: number) =>
    assert.ok(
      Math.abs((p[k] ?? NaN) - expected) <= rel * expected,
      `${k} = ${p[k]}, expected ${expected} within ${rel * 100}%`,
    );
  within('E', 1.8172, 0.01);
  within('alpha', 0.3473, 0.01);
  within('beta', 0.3672, 0.01);
  within('A', 477.9, 0.03);
  within('B', 2143, 0.03);
}

test('Chinchilla refit on 240 runs reproduces Besiroglu et al.', () => {
  const points = pointsFromCsv('chinchilla', {
    path: CHINCHILLA_CSV,
    name: 'svg_extracted_data.csv',
    N_column: 'Model Size',
    C_column: 'Training FLOP',
    y_column: 'loss',
  });
  assert.equal(points.length, 245);
  applyFilters('chinchilla', points, { drop_highest: 5 });
  checkPositive('chinchilla', points);
  assert.equal(points.filter((p) => p.kept).length, 240);
  const result = fitLaw(points, { law: 'chinchilla', bootstrap: 0 });
  assert.equal(result.timing.starts, 4500);
  assertBesiroglu(result.params);
  const objective = (result.json.goodness as { objective: number }).objective;
  assert.ok(Math.abs(objective - 0.0010183) < 1e-7, `Huber objective ${objective} (scipy: 0.0010183)`);
  assert.deepEqual(result.warnings, []);
});
