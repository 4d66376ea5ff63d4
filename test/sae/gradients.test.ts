/**
 * The hand-written JumpReLU gradients against tfjs autodiff of the seed's forward pass, with
 * the seed's Step function (zero gradient to z, rectangle kernel to the threshold) written
 * as a tf.customGrad. Tiny shapes, cpu backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JumpReluSae, loadTf } from '../../src/sae/engines/tfjs.js';
import { initialWeights, PARAM_NAMES, type ParamName } from '../../src/sae/jumprelu.js';
import { mulberry32 } from '../../src/random.js';

for (const applyBDecToInput of [true, false]) {
  test(`closed-form gradients match autodiff (apply_b_dec_to_input=${applyBDecToInput})`, async () => {
    const { tf } = await loadTf('cpu');
    const dIn = 6,
      dSae = 10,
      B = 16,
      bw = 0.4,
      lambda = 0.3;
    const rng = mulberry32(7);
    const w = initialWeights({ dIn, dSae }, 0.2, rng);
    // Non-trivial biases and thresholds so every path (and the STE window) is exercised.
    w.b_enc.forEach((_, i) => (w.b_enc[i] = 0.3 * (rng() - 0.5)));
    w.b_dec.forEach((_, i) => (w.b_dec[i] = 0.3 * (rng() - 0.5)));
    w.log_threshold.forEach((_, i) => (w.log_threshold[i] = Math.log(0.05 + 0.3 * rng())));
    const sae = new JumpReluSae(tf, { dIn, dSae, applyBDecToInput, bandwidth: bw }, w);
    const x = tf.tensor2d(
      Array.from({ length: B * dIn }, () => 2 * rng() - 1),
      [B, dIn],
    );

    const ours = tf.tidy(() => sae.gradients(x, lambda).grads);
    const step = tf.customGrad((z: any, thr: any, save: any) => {
      save([z, thr]);
      return {
        value: z.greater(thr).cast('float32'),
        gradFunc: (dy: any, saved: any) => {
          const [zs, th] = saved;
          const k = tf.where(
            zs
              .relu()
              .sub(th)
              .abs()
              .less(bw / 2),
            tf.fill(zs.shape, -1 / bw),
            tf.zerosLike(zs),
          );
          return [tf.zerosLike(zs), k.mul(dy).sum(0)];
        },
      };
    });
    const lossFn = (W_enc: any, b_enc: any, W_dec: any, b_dec: any, log_threshold: any) => {
      const xc = applyBDecToInput ? x.sub(b_dec) : x;
      const z = xc.matMul(W_enc).add(b_enc);
      const s = (step as any)(z, log_threshold.exp());
      const xh = z.mul(s).matMul(W_dec).add(b_dec);
      return xh.sub(x).square().sum().div(B).add(s.sum().div(B).mul(lambda));
    };
    const auto = tf.grads(lossFn)(PARAM_NAMES.map((n) => sae.p[n]) as any);
    const autoBy = Object.fromEntries(PARAM_NAMES.map((n, i) => [n, auto[i]])) as Record<ParamName, any>;
    // The seed's hook removes the component parallel to each (unit-norm) decoder row.
    const Wd = sae.p.W_dec;
    autoBy.W_dec = autoBy.W_dec.sub(Wd.mul(autoBy.W_dec).sum(1, true).mul(Wd));
    let windowHits = 0;
    for (const n of PARAM_NAMES) {
      const a = autoBy[n].dataSync() as Float32Array;
      const o = ours[n].dataSync() as Float32Array;
      const scale = Math.max(1e-6, ...Array.from(a, Math.abs));
      for (let i = 0; i < a.length; i++) {
        assert.ok(Math.abs(a[i] - o[i]) <= 1e-4 * scale, `${n}[${i}]: ours ${o[i]} autodiff ${a[i]}`);
      }
      if (n === 'log_threshold') windowHits = Array.from(a).filter((v) => v !== 0).length;
      assert.ok(
        Array.from(o).some((v) => v !== 0),
        `${n}: gradient is all zero (test would not discriminate)`,
      );
    }
    assert.ok(windowHits > 0, 'no feature was in the STE window');
  });
}

test('Adam step matches a scalar re-implementation of PyTorch Adam; decoder rows stay unit norm', async () => {
  const { tf } = await loadTf('cpu');
  const dIn = 4,
    dSae = 5,
    B = 8;
  const rng = mulberry32(3);
  const sae = new JumpReluSae(
    tf,
    { dIn, dSae, applyBDecToInput: true, bandwidth: 0.001 },
    initialWeights({ dIn, dSae }, 0.001, rng),
  );
  const x = tf.tensor2d(
    Array.from({ length: B * dIn }, () => 2 * rng() - 1),
    [B, dIn],
  );
  const lr = 0.01;
  for (let t = 1; t <= 3; t++) {
    const before = sae.state().weights;
    const m0 = sae.state().adam;
    const g = tf.tidy(() => sae.gradients(x, 0.01).grads);
    const gArr = Object.fromEntries(PARAM_NAMES.map((n) => [n, g[n].dataSync() as Float32Array]));
    sae.trainStep(x, 0.01, lr);
    const after = sae.state().weights;
    // b_enc: beta1 = 0, beta2 = 0.999: p -= lr * g / (sqrt(v_t / bc2) + eps)
    for (let i = 0; i < dSae; i++) {
      const gi = gArr.b_enc[i];
      const v = 0.999 * m0.v.b_enc[i] + 0.001 * gi * gi;
      const expect = before.b_enc[i] - (lr * gi) / (Math.sqrt(v) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
      assert.ok(Math.abs(after.b_enc[i] - expect) < 1e-6, `b_enc[${i}] step ${t}`);
    }
    // log_threshold: beta1 = 0.99, 2 x lr
    for (let i = 0; i < dSae; i++) {
      const gi = gArr.log_threshold[i];
      const m = 0.99 * m0.m.log_threshold[i] + 0.01 * gi;
      const v = 0.999 * m0.v.log_threshold[i] + 0.001 * gi * gi;
      const expect =
        before.log_threshold[i] -
        (((2 * lr) / (1 - 0.99 ** t)) * m) / (Math.sqrt(v) / Math.sqrt(1 - 0.999 ** t) + 1e-8);
      assert.ok(Math.abs(after.log_threshold[i] - expect) < 1e-5, `log_threshold[${i}] step ${t}`);
    }
    for (let j = 0; j < dSae; j++) {
      const n = Math.hypot(...after.W_dec.subarray(j * dIn, (j + 1) * dIn));
      assert.ok(Math.abs(n - 1) < 1e-5, `decoder row ${j} norm ${n}`);
    }
  }
});
