/**
 * Report fixtures in the formats of src/formats/ (FitFile, metrics records): fit.json files (power laws
 * with a curve, an interval band, a dropped point and one far extrapolation) and
 * metrics.jsonl files (config, train lines, eval) for a few small runs and a final run.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Fixtures {
  lossVsSize: string;
  lossVsData: string;
  lrFit: string;
  runs: string[];
  finalRun: string;
  budget: { table: Array<{ item: string; flops: number; hours: number | null; note: string }>; warnings: string[] };
}

/** A power-law fit y = a x^b over `xs`, predicting at `predictAt`, with a widening band. */
function powerFit(opts: {
  xLabel: string;
  yLabel: string;
  a: number;
  b: number;
  xs: number[];
  dropped: number[];
  predictAt: number[];
}) {
  const law = (x: number) => opts.a * x ** opts.b;
  // Deterministic "noise" so points sit near, not on, the law.
  const points = opts.xs.map((x, i) => ({
    x,
    y: law(x) * (1 + 0.04 * Math.sin(3 * i + 1)),
    kept: !opts.dropped.includes(x),
  }));
  const xMax = Math.max(...points.filter((p) => p.kept).map((p) => p.x));
  const xMin = Math.min(...opts.xs);
  const xEnd = Math.max(xMax, ...opts.predictAt);
  const width = (x: number) => 0.05 + 0.08 * Math.max(0, Math.log10(x / xMax)); // wider beyond the data
  const band = (x: number) => ({ x, y: law(x), lo: law(x) * (1 - width(x)), hi: law(x) * (1 + width(x)) });
  const curve = Array.from({ length: 40 }, (_, i) => band(xMin * (xEnd / xMin) ** (i / 39)));
  return {
    law: 'power',
    formula: 'y = a * x^b',
    x_label: opts.xLabel,
    y_label: opts.yLabel,
    params: { a: opts.a, b: opts.b },
    intervals: { a: [opts.a * 0.9, opts.a * 1.1], b: [opts.b - 0.02, opts.b + 0.02] },
    confidence: 0.95,
    points,
    residuals: points.map((p) => Math.log(p.y) - Math.log(law(p.x))),
    goodness: { r2: 0.987, rmse_log: 0.031, objective: 1.2e-4 },
    predictions: opts.predictAt.map((x) => ({ ...band(x), extrapolation: x / xMax })),
    curve,
    warnings: opts.dropped.map((x) => `point ${opts.xLabel}=${x} dropped (highest loss)`),
  };
}

function metrics(instance: string, dSae: number, nSamples: number, lr: number, steps: number, scale: number): string {
  const lines: object[] = [
    {
      type: 'config',
      instance,
      d_in: 64,
      d_sae: dSae,
      batch_size: 256,
      steps,
      n_samples: nSamples,
      lr,
      lambda: 4e-4,
      backend: 'wasm',
      seed: 0,
    },
  ];
  for (let step = 0; step <= steps; step += steps / 10) {
    const t = step / steps;
    const mse = scale * (0.05 + 0.9 * Math.exp(-6 * t));
    const l0 = 10 + 50 * Math.exp(-4 * t);
    lines.push({
      type: 'train',
      step,
      samples: step * 256,
      loss: mse + 4e-4 * l0,
      mse,
      l0,
      fvu: mse / 1.3,
      dead_frac: 0.01 * t,
      lr,
      lambda: 4e-4 * t,
      samples_per_s: 5000,
    });
  }
  lines.push({
    type: 'eval',
    step: steps,
    mse: scale * 0.05,
    l0: 12,
    fvu: (scale * 0.05) / 1.3,
    dead_frac: 0.01,
    recovery_mean_max_cos: 0.93,
    recovery_frac_above_0_9: 0.81,
  });
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

export function writeFixtures(dir: string): Fixtures {
  mkdirSync(dir, { recursive: true });
  const write = (name: string, text: string) => {
    const path = join(dir, name);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
    return path;
  };
  const widths = [64, 128, 256, 512];
  const lossVsSize = write(
    'fit-size/fit.json',
    JSON.stringify(
      powerFit({
        xLabel: 'd_sae',
        yLabel: 'loss',
        a: 0.9,
        b: -0.35,
        xs: widths,
        dropped: [64],
        predictAt: [4096],
      }),
    ),
  );
  const lossVsData = write(
    'fit-data/fit.json',
    JSON.stringify(
      powerFit({
        xLabel: 'n_samples',
        yLabel: 'loss',
        a: 2.2,
        b: -0.21,
        xs: [1e5, 2e5, 4e5, 8e5],
        dropped: [1e5],
        predictAt: [1.2e6],
      }),
    ),
  );
  const lrFit = write(
    'fit-lr/fit.json',
    JSON.stringify(
      powerFit({
        xLabel: 'd_sae',
        yLabel: 'lr',
        a: 3e-3,
        b: -0.5,
        xs: widths,
        dropped: [],
        predictAt: [4096],
      }),
    ),
  );
  const runs = widths.map((w, i) =>
    write(`small-${w}/metrics.jsonl`, metrics(`small[d_sae=${w},lr=3e-4]`, w, 2e5, 3e-4, 1000, 1 - 0.15 * i)),
  );
  const finalRun = write('final/metrics.jsonl', metrics('final', 4096, 1.2e6, 4.7e-5, 5000, 0.5));
  const budget = {
    table: [
      { item: 'Llama half (forward)', flops: 2.52e18, hours: 4.24, note: 'N_l * D' },
      { item: 'SAE final', flops: 8.45e17, hours: 1.42, note: '6 * 2 d_in d_sae * D' },
      { item: 'small runs (4)', flops: 3.1e15, hours: null, note: 'CPU <sizes> & "quotes"' },
    ],
    warnings: ['data budget 1.2e6 exceeds the dataset (2.0 passes over the same vectors)'],
  };
  return { lossVsSize, lossVsData, lrFit, runs, finalRun, budget };
}

/**
 * A Chinchilla fit as fit-law writes it: points in (N, D), one curve per N
 * ({N, points: [{x: D, y, lo, hi}]}), no bootstrap (null intervals), a prediction at {N, D}.
 */
export function writeChinchillaFit(dir: string): string {
  const law = (N: number, D: number) => 1.8 + 480 / N ** 0.35 + 2100 / D ** 0.37;
  const Ns = [1e8, 4e8, 1.6e9];
  const Ds = [2e9, 8e9, 3.2e10];
  const points = Ns.flatMap((N) =>
    Ds.map((D, j) => ({ N, D, y: law(N, D) * (1 + 0.01 * j), kept: !(N === 1e8 && j === 0) })),
  );
  const fit = {
    law: 'chinchilla',
    formula: 'L = E + A / N^alpha + B / D^beta',
    x_label: 'N',
    y_label: 'loss',
    d_label: 'D',
    params: { E: 1.8, A: 480, B: 2100, alpha: 0.35, beta: 0.37 },
    intervals: { E: null, A: null, B: null, alpha: null, beta: null },
    confidence: 0.95,
    points,
    goodness: { r2: 0.99, rmse_log: 0.01, objective: 1e-5 },
    predictions: [{ N: 7e10, D: 1.4e12, y: law(7e10, 1.4e12), lo: null, hi: null, extrapolation: 43.75 }],
    curve: Ns.map((N) => ({ N, points: Ds.map((D) => ({ x: D, y: law(N, D), lo: null, hi: null })) })),
    warnings: [],
  };
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'fit.json');
  writeFileSync(path, JSON.stringify(fit));
  return path;
}
