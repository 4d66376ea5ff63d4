/**
 * Generates the benchmark workload twice, once per tool, with the same shape and the same
 * shell commands: a layered DAG of trivial shell stages (`layers` layers of `width`).
 *
 * Stage (L, i) reads the outputs of (L-1, i) and (L-1, (i+1) % width), appends its own name
 * and param, and writes the cksum of that to a tiny file. Layer 0 reads `seed.txt`, a
 * declared input file. Every stage has its own pipeline param `p_L_i` (Snakemake: config key),
 * so a one-param change re-runs that stage and the cone of stages below it, in both tools.
 *
 * Each command also appends its stage name to an execution log outside both tools' caches,
 * which is how the bench counts what each tool actually ran.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

export interface Shape {
  layers: number;
  width: number;
}

export interface Workload {
  shape: Shape;
  /** Folder holding our pipeline file, its seed input and (after a run) its lock file. */
  oursDir: string;
  pipelineFile: string;
  /** Folder holding the Snakefile, config.yaml, seed input and results/. */
  snakeDir: string;
  /** One line per executed stage; each tool has its own. */
  oursExecLog: string;
  snakeExecLog: string;
  /** Initial value of every param, by param name. */
  params: Record<string, number>;
}

export const stageName = (layer: number, i: number): string => `s_${layer}_${i}`;
export const paramName = (layer: number, i: number): string => `p_${layer}_${i}`;

/** The two stages of the previous layer that (layer, i) reads, in the order it reads them. */
export function upstreamOf(shape: Shape, layer: number, i: number): Array<[number, number]> {
  if (layer === 0) return [];
  const next = (i + 1) % shape.width;
  return next === i
    ? [[layer - 1, i]]
    : [
        [layer - 1, i],
        [layer - 1, next],
      ];
}

/** Names of the stage (layer, i) and of every stage downstream of it. */
export function coneBelow(shape: Shape, layer: number, i: number): Set<string> {
  const cone = new Set([stageName(layer, i)]);
  for (let l = layer + 1; l < shape.layers; l++) {
    for (let j = 0; j < shape.width; j++) {
      if (upstreamOf(shape, l, j).some(([ul, ui]) => cone.has(stageName(ul, ui)))) cone.add(stageName(l, j));
    }
  }
  return cone;
}

/** The shell text shared by both tools; `inputs` are already-quoted shell words. */
function stageCommand(name: string, inputs: string, param: string, out: string, execLog: string): string {
  return `(cat ${inputs}; echo ${name} ${param}) | cksum > ${out}; echo ${name} >> '${execLog}'`;
}

export function generate(root: string, shape: Shape): Workload {
  const oursDir = join(root, 'ours');
  const snakeDir = join(root, 'snake');
  mkdirSync(oursDir, { recursive: true });
  mkdirSync(snakeDir, { recursive: true });
  const seed = 'benchmark seed\n';
  writeFileSync(join(oursDir, 'seed.txt'), seed);
  writeFileSync(join(snakeDir, 'seed.txt'), seed);

  const params: Record<string, number> = {};
  for (let l = 0; l < shape.layers; l++) {
    for (let i = 0; i < shape.width; i++) params[paramName(l, i)] = l * 1000 + i;
  }
  const workload: Workload = {
    shape,
    oursDir,
    pipelineFile: join(oursDir, 'bench.yaml'),
    snakeDir,
    oursExecLog: join(root, 'ours-exec.log'),
    snakeExecLog: join(root, 'snake-exec.log'),
    params,
  };
  writeFileSync(workload.pipelineFile, pipelineYaml(workload));
  writeFileSync(join(snakeDir, 'Snakefile'), snakefile(workload));
  writeFileSync(join(snakeDir, 'config.yaml'), stringify(params));
  return workload;
}

function pipelineYaml(w: Workload): string {
  const stages: Record<string, unknown> = {};
  for (let l = 0; l < w.shape.layers; l++) {
    for (let i = 0; i < w.shape.width; i++) {
      const name = stageName(l, i);
      const ups = upstreamOf(w.shape, l, i);
      const inputs =
        ups.length === 0
          ? 'seed.txt'
          : ups.map(([ul, ui]) => `'\${{ stages.${stageName(ul, ui)}.outputs.out }}'`).join(' ');
      const cmd = stageCommand(name, inputs, `\${{ params.${paramName(l, i)} }}`, '"$OUT/out.txt"', w.oursExecLog);
      stages[name] = {
        uses: 'shell',
        with: {
          cmd,
          ...(ups.length === 0 ? { inputs: ['seed.txt'] } : {}),
          outputs: { out: 'out.txt' },
        },
      };
    }
  }
  return stringify({ name: 'runtime-bench', params: w.params, stages }, { lineWidth: 0 });
}

function snakefile(w: Workload): string {
  const lastLayer = w.shape.layers - 1;
  const finals = Array.from({ length: w.shape.width }, (_, i) => `"results/${stageName(lastLayer, i)}.txt"`);
  const rules = [`configfile: "config.yaml"\n`, `rule all:\n    input: [${finals.join(', ')}]\n`];
  for (let l = 0; l < w.shape.layers; l++) {
    for (let i = 0; i < w.shape.width; i++) {
      const name = stageName(l, i);
      const ups = upstreamOf(w.shape, l, i);
      const inputs = ups.length === 0 ? ['"seed.txt"'] : ups.map(([ul, ui]) => `"results/${stageName(ul, ui)}.txt"`);
      // Same command text as ours: {input} expands to the inputs in order, space-separated.
      const cmd = stageCommand(name, '{input}', '{params.p}', '{output}', w.snakeExecLog);
      rules.push(
        `rule ${name}:\n` +
          `    input: ${inputs.join(', ')}\n` +
          `    output: "results/${name}.txt"\n` +
          `    params: p=config["${paramName(l, i)}"]\n` +
          `    shell: ${JSON.stringify(cmd)}\n`,
      );
    }
  }
  return rules.join('\n');
}
