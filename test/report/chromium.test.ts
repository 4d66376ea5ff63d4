/**
 * Renders report.html in headless Chromium (Debian package `chromium`) and checks that the
 * browser draws the plots: the DOM holds the SVG marks, and the screenshot has the colours
 * of the fitted law, its band and the points. Skipped where /usr/bin/chromium is absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import reportStage from '../../src/stages/report.js';
import { runStageDirect } from '../helpers/run-stage.js';
import { writeFixtures } from './fixtures.js';
import { countColour, decodePng, inkFraction } from './png.js';

const CHROMIUM = '/usr/bin/chromium';
const run = promisify(execFile);

async function chromium(args: string[], profile: string): Promise<string> {
  const flags = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${profile}`,
  ];
  const { stdout } = await run(CHROMIUM, [...flags, ...args], { timeout: 90_000, maxBuffer: 64 << 20 });
  return stdout;
}

test('headless Chromium draws the report plots', { timeout: 240_000 }, async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} not installed (apt-get install -y chromium)`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'report-chromium-'));
  const fx = writeFixtures(join(dir, 'fx'));
  const { outDir } = await runStageDirect(reportStage, {
    title: 'Chromium check',
    budget: fx.budget,
    loss_fits: [fx.lossVsSize, fx.lossVsData],
    lr_fit: fx.lrFit,
    runs: fx.runs,
    final_run: fx.finalRun,
  });
  const url = pathToFileURL(join(outDir, 'report.html')).href;

  // The DOM after the browser parsed the page: one inline SVG per plot file the stage wrote,
  // and real marks with coordinates.
  const dom = await chromium(['--dump-dom', url], join(dir, 'profile-dom'));
  const plotFiles = readdirSync(join(outDir, 'plots')).filter((f) => f.endsWith('.svg'));
  assert.ok(plotFiles.length >= 5, `the fixtures give at least 5 plots, got ${plotFiles.join(', ')}`);
  assert.equal((dom.match(/<svg /g) ?? []).length, plotFiles.length, 'every plot is inline in the page');
  for (const mark of ['area', 'line', 'symbol']) {
    const group = new RegExp(`<g class="mark-${mark} role-mark[^"]*"[^>]*>\\s*<path[^>]* d="M[-\\d.]+,[-\\d.]+`);
    assert.match(dom, group, `a ${mark} mark with coordinates`);
  }

  // The screenshot: not blank, and the plot colours are on screen.
  const png = join(dir, 'shot.png');
  await chromium(
    ['--hide-scrollbars', `--screenshot=${png}`, '--window-size=1200,3000', url],
    join(dir, 'profile-shot'),
  );
  const img = decodePng(readFileSync(png));
  assert.equal(img.width, 1200);
  const ink = inkFraction(img);
  assert.ok(ink > 0.03 && ink < 0.8, `screenshot has content, ink fraction ${ink.toFixed(3)}`);
  t.diagnostic(
    `ink ${ink.toFixed(3)}, law ${countColour(img, '#08519c', 30)}, band ` +
      `${countColour(img, '#d3e7f1', 12)}, points ${countColour(img, '#e6550d', 30)}`,
  );
  assert.ok(countColour(img, '#08519c', 30) > 500, 'fitted law line (dark blue) is drawn');
  // The band is #9ecae1 at opacity 0.45 over white: about #d3e7f1.
  assert.ok(countColour(img, '#d3e7f1', 12) > 5000, 'interval band (light blue) is drawn');
  assert.ok(countColour(img, '#e6550d', 30) > 200, 'kept points (orange) are drawn');
  rmSync(dir, { recursive: true, force: true });
});
