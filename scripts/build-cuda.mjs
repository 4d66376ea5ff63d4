#!/usr/bin/env node
/**
 * Builds the CUDA training addon (native/cuda) in up to two forms:
 *   - the device build, native/build/cuda/sae_cuda.node, where nvcc is installed: the kernels
 *     for sm_80 and sm_90 (+ PTX), the CUDA runtime linked statically, cuBLAS opened at run time;
 *     it loads on a machine without a GPU and says "no CUDA device" from info();
 *   - the emulation build, native/build/cuda-emulated/sae_cuda_emulated.node, where g++ and
 *     OpenBLAS are: the same kernels compiled as host C++ (native/cuda/device.h), which the
 *     tests run to check the kernels' arithmetic without a GPU. It is not a GPU engine.
 * Run by `npm ci` / `npm install` (the "prepare" script) and `npm run build:cuda`.
 *
 * It never fails the install: where a tool is missing or a build fails it prints one line and
 * exits 0; the full log is native/build/cuda/build-cuda.log (or cuda-emulated/).
 *
 *   node scripts/build-cuda.mjs [--force] [--device | --emulated]
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const sourceDir = join(root, 'native', 'cuda');
/** Headers shared with the CPU addon (argument checks). */
const commonDir = join(root, 'native', 'common');
const require = createRequire(import.meta.url);
export const DEVICE_ADDON = join(root, 'native', 'build', 'cuda', 'sae_cuda.node');
export const EMULATED_ADDON = join(root, 'native', 'build', 'cuda-emulated', 'sae_cuda_emulated.node');
/** Real GPUs: A100 (sm_80) and H100/H200 (sm_90) as machine code, PTX for newer ones. */
const GENCODE = [
  '-gencode',
  'arch=compute_80,code=sm_80',
  '-gencode',
  'arch=compute_90,code=sm_90',
  '-gencode',
  'arch=compute_90,code=compute_90',
];
const CXXFLAGS = ['-std=c++17', '-O3', '-fPIC', '-DNAPI_VERSION=8', '-DNAPI_CPP_EXCEPTIONS', '-fexceptions'];

function runSync(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

/** Runs a command, resolving to { ok, out } (never rejects), so that compilations run side by side. */
function run(cmd, args) {
  return new Promise((resolve) => {
    let out = `$ ${cmd} ${args.join(' ')}\n`;
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ ok: false, out: `${out}${e.message}\n` }));
    child.on('close', (code) => resolve({ ok: code === 0, out }));
  });
}

/** The CUDA toolkit: a folder with bin/nvcc, include/cuda_runtime.h and lib64/libcudart_static.a. */
function findToolkit() {
  const onPath = runSync('sh', ['-c', 'command -v nvcc']).out.trim();
  const candidates = [
    process.env.CUDA_HOME,
    process.env.CUDA_PATH,
    onPath && dirname(dirname(realpathSync(onPath))),
    '/usr/local/cuda',
    ...(existsSync('/usr/local')
      ? readdirSync('/usr/local')
          .filter((d) => d.startsWith('cuda-'))
          .sort()
          .reverse()
          .map((d) => join('/usr/local', d))
      : []),
  ];
  return candidates.find(
    (d) => d && ['bin/nvcc', 'include/cuda_runtime.h', 'lib64/libcudart_static.a'].every((f) => existsSync(join(d, f))),
  );
}

/** OpenBLAS's own cblas.h folder and its library folder (the OpenMP variant first), as build-native.mjs. */
function findOpenBlas() {
  const t = 'x86_64-linux-gnu';
  const dirs = [
    [`/usr/include/${t}/openblas-openmp`, `/usr/lib/${t}/openblas-openmp`],
    [`/usr/include/${t}/openblas-pthread`, `/usr/lib/${t}/openblas-pthread`],
    [`/usr/include/${t}`, `/usr/lib/${t}`],
    ['/usr/include/openblas', '/usr/lib64'],
  ];
  const found = dirs.find(([inc, lib]) => existsSync(join(inc, 'cblas.h')) && existsSync(join(lib, 'libopenblas.so')));
  return found && { include: found[0], lib: found[1] };
}

/** Node's headers (offline: next to this node binary, or the distribution's) and node-addon-api's. */
function napiIncludes() {
  const prefix = dirname(dirname(process.execPath));
  const nodeInclude = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(prefix, 'include', 'node'),
    '/usr/include/node',
  ].find((d) => d && existsSync(join(d, 'node_api.h')));
  let addonApi;
  try {
    addonApi = require('node-addon-api').include_dir;
  } catch {}
  return nodeInclude && addonApi ? [`-I${nodeInclude}`, `-I${addonApi}`] : null;
}

function upToDate(output) {
  if (!existsSync(output)) return false;
  const built = statSync(output).mtimeMs;
  const sources = [
    fileURLToPath(import.meta.url),
    ...[sourceDir, commonDir].flatMap((d) => readdirSync(d).map((f) => join(d, f))),
  ];
  return sources.every((f) => statSync(f).mtimeMs < built);
}

/** Loads the addon in a fresh process and prints its info(): a build that links but does not load is no build. */
function probe(output) {
  const r = runSync(process.execPath, ['-e', `console.log(JSON.stringify(require(${JSON.stringify(output)}).info()))`]);
  return r.ok ? { ok: true, info: JSON.parse(r.out.trim().split('\n').pop()) } : { ok: false, out: r.out.trim() };
}

async function buildDevice(force) {
  const say = (m) => console.log(`sae-pipeline: CUDA addon ${m}`);
  if (!force && upToDate(DEVICE_ADDON)) return;
  const cuda = findToolkit();
  if (!cuda)
    return say(
      'not built (no CUDA toolkit: nvcc, cuda_runtime.h, libcudart_static.a); the GPU engine is off (README: GPU)',
    );
  const includes = napiIncludes();
  if (!includes) return say('not built (Node headers or node-addon-api not found; run npm ci)');
  const outDir = dirname(DEVICE_ADDON),
    log = join(outDir, 'build-cuda.log');
  mkdirSync(outDir, { recursive: true });
  const nvcc = join(cuda, 'bin', 'nvcc');
  const nvccFlags = ['-std=c++17', '-O3', '-Xcompiler', '-fPIC', ...GENCODE];
  const steps = await Promise.all([
    run(nvcc, [...nvccFlags, '-c', join(sourceDir, 'step.cu'), '-o', join(outDir, 'step.o')]),
    run(nvcc, [...nvccFlags, '-c', join(sourceDir, 'device_cuda.cu'), '-o', join(outDir, 'device_cuda.o')]),
    run('g++', [
      ...CXXFLAGS,
      ...includes,
      `-I${join(cuda, 'include')}`,
      '-c',
      join(sourceDir, 'addon.cc'),
      '-o',
      join(outDir, 'addon.o'),
    ]),
  ]);
  const link = steps.every((s) => s.ok)
    ? await run('g++', [
        '-shared',
        '-o',
        DEVICE_ADDON,
        ...['addon.o', 'step.o', 'device_cuda.o'].map((f) => join(outDir, f)),
        `-L${join(cuda, 'lib64')}`,
        '-lcudart_static',
        '-ldl',
        '-lpthread',
        '-lrt',
      ])
    : { ok: false, out: '' };
  writeFileSync(log, [...steps, link].map((s) => s.out).join('\n'));
  if (!link.ok) return say(`not built (the build failed, see ${log}); the GPU engine is off`);
  const p = probe(DEVICE_ADDON);
  if (!p.ok) return say(`built but does not load (${p.out}); the GPU engine is off`);
  say(`built (${DEVICE_ADDON}; ${p.info.error ?? p.info.device})`);
}

async function buildEmulated(force) {
  const say = (m) => console.log(`sae-pipeline: CUDA kernels' emulation build ${m}`);
  if (!force && upToDate(EMULATED_ADDON)) return;
  const blas = findOpenBlas();
  const includes = napiIncludes();
  if (!runSync(process.env.CXX || 'g++', ['--version']).ok || !blas || !includes) {
    return say('not built (needs g++, OpenBLAS and Node headers); its tests skip');
  }
  const outDir = dirname(EMULATED_ADDON),
    log = join(outDir, 'build-cuda-emulated.log');
  mkdirSync(outDir, { recursive: true });
  const r = await run(process.env.CXX || 'g++', [
    ...CXXFLAGS,
    '-DSAE_CUDA_EMULATE',
    ...includes,
    `-I${blas.include}`,
    '-x',
    'c++',
    ...['step.cu', 'emulate.cc', 'addon.cc'].map((f) => join(sourceDir, f)),
    '-shared',
    '-o',
    EMULATED_ADDON,
    `-L${blas.lib}`,
    `-Wl,-rpath,${blas.lib}`,
    '-lopenblas',
  ]);
  writeFileSync(log, r.out);
  if (!r.ok) return say(`failed, see ${log}; its tests skip`);
  const p = probe(EMULATED_ADDON);
  if (!p.ok) return say(`built but does not load (${p.out}); its tests skip`);
  say(`built (${EMULATED_ADDON})`);
}

const force = process.argv.includes('--force');
const only = process.argv.includes('--device') ? 'device' : process.argv.includes('--emulated') ? 'emulated' : null;
try {
  await Promise.all([only !== 'emulated' && buildDevice(force), only !== 'device' && buildEmulated(force)]);
} catch (e) {
  console.log(`sae-pipeline: CUDA addon not built (${e?.message ?? e}); the GPU engine is off`);
}
