/**
 * Peak memory of a native training, phase by phase: `node dist/bench/memory-native.js
 * [d_in d_sae batch]` (default 2048 16384 4096, the seed's final SAE at the batch).
 * Prints the process's resident set after each phase of a train-sae run (engine creation, steps,
 * a checkpoint, the final weights read for the export) beside the model's own bytes: parameters, both Adam
 * moments and one batch. The bar (issue 8): the peak at most 1.5x those bytes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chooseEngine } from '../src/sae/backend.js';
import { readWeights } from '../src/sae/engine.js';
import { initialWeights } from '../src/sae/jumprelu.js';
import { mulberry32 } from '../src/random.js';

const [dIn, dSae, batch] = process.argv.slice(2).map(Number);
const shape = { dIn: dIn || 2048, dSae: dSae || 16384 };
const B = batch || 4096;

function rssMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}
function peakMiB(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}
const params = 2 * shape.dIn * shape.dSae + 2 * shape.dSae + shape.dIn;
const modelMiB = (3 * params * 4 + B * shape.dIn * 4) / 2 ** 20;
const say = (phase: string) =>
  console.log(
    `${phase.padEnd(28)} rss ${rssMiB().toFixed(0).padStart(6)} MiB  peak ${peakMiB().toFixed(0).padStart(6)} MiB ` +
      `(${(peakMiB() / modelMiB).toFixed(2)}x of ${modelMiB.toFixed(0)} MiB params + Adam + batch)`,
  );

say('node + modules');
const choice = await chooseEngine('native', undefined);
const cfg = { ...shape, applyBDecToInput: false, bandwidth: 0.001 };
let weights: ReturnType<typeof initialWeights> | undefined = initialWeights(shape, 0.001, mulberry32(1));
say('initial weights in JS');
const engine = await choice.create({ cfg, init: { weights }, initDisposable: true, batchSize: B });
weights = undefined;
say('engine created');
const x = new Float32Array(B * shape.dIn).map((_, i) => Math.sin(i));
for (let s = 0; s < 2; s++) await engine.trainStep(x, B, 1e-3, 1e-4);
say('2 steps');
const dir = mkdtempSync(join(tmpdir(), 'memory-native-'));
const { saveEngineCheckpoint } = await import('../src/sae/checkpoint.js');
await saveEngineCheckpoint(dir, shape, engine, { step: 2, loader: null, rng: 0, fingerprint: {} }, 'none');
say('checkpoint written');
await engine.endTraining?.();
say('training ended (Adam freed)');
await readWeights(engine);
say('final weights read');
await engine.dispose();
rmSync(dir, { recursive: true, force: true });
