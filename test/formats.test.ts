/**
 * The inter-stage file formats (src/formats/): what the producers write validates against
 * the schemas, with its version; a consumer refuses an unknown version or a malformed field,
 * naming the file, line and field.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FIT_FORMAT, FitFile } from '../src/formats/fit.js';
import { METRICS_FORMAT, METRICS_RECORDS } from '../src/formats/metrics.js';
import { readFormat } from '../src/formats/read.js';
import { STORE_FORMAT, StoreHeader } from '../src/formats/store.js';
import fitLaw from '../src/stages/fit-law.js';
import lrLaw from '../src/stages/lr-law.js';
import reportStage from '../src/stages/report.js';
import trainSae from '../src/stages/train-sae.js';
import ingest from '../src/stages/ingest.js';
import estimateNorm from '../src/stages/estimate-norm.js';
import decideStage from '../src/stages/decide.js';
import { closureFiles } from '../src/runtime/code.js';
import type { StageType } from '../src/runtime/stage.js';
import { openStore } from '../src/data/loader.js';
import { runStageDirect } from './helpers/run-stage.js';
import { sparseData, tempDir, writeStore } from './sae/fixtures.js';
import { runTrainSae } from './sae/stage-ctx.js';

test('fit-law and lr-law write fit.json in its schema, with its version', async () => {
  const fit = await runStageDirect(fitLaw, {
    x: [64, 128, 256, 512],
    y: [0.5, 0.36, 0.26, 0.19],
    bootstrap: 20,
    predict_at: [4096],
  });
  const lr = await runStageDirect(lrLaw, {
    d_sae: [64, 64, 64, 128, 128, 128],
    lr: [1e-3, 3e-3, 1e-2, 1e-3, 3e-3, 1e-2],
    loss: [0.5, 0.4, 0.45, 0.4, 0.3, 0.35],
    predict_at: 1024,
    window: 3,
    bootstrap: 20,
  });
  for (const run of [fit, lr]) {
    const path = join(run.outDir, 'fit.json');
    const file = readFormat(FitFile, JSON.parse(readFileSync(path, 'utf8')), path);
    assert.equal(file.format, FIT_FORMAT);
  }
});

test('train-sae writes every metrics.jsonl record in its schema; the config line has the version', async () => {
  const root = tempDir('formats');
  const d = 8;
  const store = writeStore(join(root, 'store'), sparseData(512 + 64, d, 12, 0.15, 5).x, d);
  assert.equal(openStore(store).header.format, STORE_FORMAT);
  readFormat(StoreHeader, JSON.parse(readFileSync(join(store, 'store.json'), 'utf8')), 'store.json');
  const params = {
    store,
    eval_rows: 64,
    d_sae: 16,
    batch_size: 32,
    steps: 8,
    lr: 1e-2,
    log_every: 4,
    backend: 'cpu',
    seed: 1,
  };
  await runTrainSae(params, { outDir: join(root, 'out'), workDir: join(root, 'work') });
  const lines = readFileSync(join(root, 'out', 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.map((l) => l.type),
    ['config', 'train', 'train', 'eval', 'run'],
  );
  lines.forEach((l, i) =>
    readFormat(METRICS_RECORDS[l.type as keyof typeof METRICS_RECORDS], l, `metrics.jsonl line ${i + 1}`),
  );
  assert.equal(lines[0].format, METRICS_FORMAT);
});

test('a consumer refuses an unknown version and a malformed field, naming file, line and field', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'formats-bad-'));
  const fit = join(dir, 'fit.json');
  writeFileSync(fit, JSON.stringify({ format: 'fit/2', law: 'power', params: { a: 1 }, points: [] }));
  await assert.rejects(
    runStageDirect(reportStage, { title: 't', loss_fits: [fit] }),
    (e: Error) => e.message.includes(fit) && e.message.includes('field "format" must be "fit/1" (got "fit/2")'),
  );
  const metrics = join(dir, 'metrics.jsonl');
  writeFileSync(metrics, `{"type":"config","format":"sae-metrics/9"}\n`);
  await assert.rejects(
    runStageDirect(reportStage, { title: 't', runs: [metrics] }),
    (e: Error) =>
      e.message.includes(`${metrics} line 1`) && e.message.includes('field "format" must be "sae-metrics/1"'),
  );
  writeFileSync(metrics, `{"type":"config"}\n{"type":"train","step":4,"mse":"low"}\n`);
  await assert.rejects(
    runStageDirect(reportStage, { title: 't', runs: [metrics] }),
    (e: Error) =>
      e.message.includes(`${metrics} line 2`) && e.message.includes('field "mse" must be a number or null (got "low")'),
  );
  writeFileSync(fit, JSON.stringify({ law: 'power', params: { a: 1 }, points: [{ x: 1, y: 2, kept: 'yes' }] }));
  await assert.rejects(runStageDirect(reportStage, { title: 't', loss_fits: [fit] }), (e: Error) =>
    e.message.includes('points[0]: field "kept" must be a boolean (got "yes")'),
  );
});

/** The schemas of the files, by the name each is exported under. */
const SCHEMAS = {
  fit: 'FitFile',
  metrics: 'MetricsConfig',
  store: 'StoreHeader',
} as const;
type Schema = keyof typeof SCHEMAS;

/** Which file schemas the compiled modules of a stage type's code closure define (its cache key covers them). */
function schemasInClosure(stage: StageType<any>): Schema[] {
  const texts = closureFiles(stage.codeFile!).map((f) => readFileSync(f, 'utf8'));
  const defines = (name: string) => texts.some((t) => new RegExp(`\\bexport const ${name} =`).test(t));
  return (Object.keys(SCHEMAS) as Schema[]).filter((s) => defines(SCHEMAS[s]));
}

test("a stage type's code closure holds no schema of a file it neither writes nor reads", () => {
  // An edit to a schema re-keys the stages whose closure holds it, so only those that write or read the file.
  // The listed ones are there: the check sees a schema where there is one.
  const expected: [StageType<any>, Schema[]][] = [
    [trainSae, ['metrics', 'store']],
    [ingest, ['store']],
    [estimateNorm, ['store']],
    [fitLaw, ['fit']],
    [lrLaw, ['fit']],
    [decideStage, []], // it builds its record by the type alone, which compiling erases
    [reportStage, ['fit', 'metrics']],
  ];
  for (const [stage, schemas] of expected) assert.deepEqual(schemasInClosure(stage), schemas, stage.name);
});
