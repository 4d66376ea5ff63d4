/** No tensor leaks: tf.memory().numTensors is flat over 1,000 training steps (cpu, tiny shapes). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JumpReluSae, loadTf } from '../../src/sae/engines/tfjs.js';
import { initialWeights } from '../../src/sae/jumprelu.js';
import { mulberry32 } from '../../src/random.js';

test('numTensors and bytes are flat over 1000 steps', async () => {
  const { tf } = await loadTf('cpu');
  const dIn = 8,
    dSae = 16,
    B = 16;
  const rng = mulberry32(1);
  const sae = new JumpReluSae(
    tf,
    { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 },
    initialWeights({ dIn, dSae }, 0.001, rng),
  );
  const data = new Float32Array(B * dIn).map(() => rng() - 0.5);
  const step = () => {
    const x = tf.tensor2d(data, [B, dIn]);
    sae.trainStep(x, 1e-3, 1e-3);
    sae.deadFraction(1000);
    sae.evaluate(x);
    x.dispose();
  };
  step();
  const before = tf.memory();
  for (let i = 0; i < 1000; i++) step();
  const after = tf.memory();
  assert.equal(after.numTensors, before.numTensors);
  assert.equal(after.numBytes, before.numBytes);
  sae.dispose();
  assert.equal(tf.memory().numTensors, before.numTensors - 16, 'dispose frees 5 params x 3 + the dead counter');
});
