#!/usr/bin/env node
/**
 * Builds the CPU training addon (native/cpu -> native/build/Release/sae_native.node) with
 * node-gyp from node_modules against Debian's OpenBLAS. Run by `npm ci` / `npm install` (the
 * "prepare" script) and by `npm run build:native`.
 *
 * It never fails the install: where the compiler, OpenBLAS or Node's headers are missing, or
 * the build fails, it prints ONE line (training falls back to tfjs-wasm; the command that
 * enables the fast path) and exits 0. The full build log is kept in native/build/build-native.log.
 *
 *   node scripts/build-native.mjs [--force]     (--force: rebuild even if up to date)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeDir = join(root, 'native');
const buildDir = join(nativeDir, 'build');
const logPath = join(buildDir, 'build-native.log');
const require = createRequire(import.meta.url);
const { ADDON_PATH, ENABLE_COMMAND } = require('../native/index.cjs');

function giveUp(reason) {
  console.log(
    `sae-pipeline: native CPU addon not built (${reason}); training falls back to tfjs-wasm. ` +
      `Enable the fast path: ${ENABLE_COMMAND}`,
  );
  process.exit(0);
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', ...opts });
  return { ok: !r.error && r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}` };
}

/** The first existing path, or undefined. */
const firstExisting = (paths) => paths.find((p) => p && existsSync(p));

function findOpenBlas(triplet) {
  const pkgLibdir = run('pkg-config', ['--variable=libdir', 'openblas']);
  const pkgInclude = run('pkg-config', ['--variable=includedir', 'openblas']);
  // The OpenMP variant first: its threads and ours share one pool (no oversubscription).
  const lib = firstExisting([
    `/usr/lib/${triplet}/openblas-openmp/libopenblas.so`,
    pkgLibdir.ok && join(pkgLibdir.out.trim(), 'libopenblas.so'),
    `/usr/lib/${triplet}/libopenblas.so`,
    '/usr/lib64/libopenblas.so',
    '/usr/lib/libopenblas.so',
  ]);
  // OpenBLAS's own cblas.h (it declares openblas_set_num_threads), not another BLAS's; the
  // variant's own directory first (the addon includes <cblas.h> from the directory found).
  const header = [
    `/usr/include/${triplet}/openblas-openmp/cblas.h`,
    `/usr/include/${triplet}/openblas-pthread/cblas.h`,
    `/usr/include/${triplet}/cblas.h`,
    pkgInclude.ok && join(pkgInclude.out.trim(), 'cblas.h'),
    '/usr/include/openblas/cblas.h',
    '/usr/include/cblas.h',
  ].filter((p) => p && existsSync(p) && readFileSync(p, 'utf8').includes('openblas_set_num_threads'))[0];
  return { lib: lib && dirname(lib), header };
}

/** Node's headers next to this node binary (offline); else node-gyp's own lookup. */
function nodedirArgs() {
  if (process.env.npm_config_nodedir) return [`--nodedir=${process.env.npm_config_nodedir}`];
  const prefix = dirname(dirname(process.execPath));
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

/**
 * -march for the elementwise loops (the BLAS picks its own kernels at run time): x86-64-v3
 * (AVX2, FMA) where the building CPU has it, as every x86 server of the last decade does;
 * the baseline otherwise. SAE_NATIVE_MARCH overrides (e.g. "x86-64" for a portable build).
 */
function marchArgs() {
  if (process.env.SAE_NATIVE_MARCH !== undefined)
    return process.env.SAE_NATIVE_MARCH ? [`-Dmarch=${process.env.SAE_NATIVE_MARCH}`] : [];
  let flags = '';
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '';
  } catch {}
  const has = (f) => new RegExp(`\\b${f}\\b`).test(flags);
  return ['avx2', 'fma', 'bmi1', 'bmi2', 'f16c', 'movbe', 'abm'].every(has) ? ['-Dmarch=x86-64-v3'] : [];
}

function upToDate() {
  if (!existsSync(ADDON_PATH)) return false;
  const built = statSync(ADDON_PATH).mtimeMs;
  const sources = [
    join(nativeDir, 'binding.gyp'),
    fileURLToPath(import.meta.url),
    ...['cpu', 'common'].flatMap((d) => readdirSync(join(nativeDir, d)).map((f) => join(nativeDir, d, f))),
  ];
  return sources.every((f) => statSync(f).mtimeMs < built);
}

function main() {
  if (!process.argv.includes('--force') && upToDate()) return;
  const cxx = process.env.CXX || 'g++';
  if (!run(cxx, ['--version']).ok) giveUp(`no C++ compiler: '${cxx}' does not run`);
  const triplet = run(cxx, ['-print-multiarch']).out.trim() || 'x86_64-linux-gnu';
  const blas = findOpenBlas(triplet);
  if (!blas.lib || !blas.header) giveUp('OpenBLAS (libopenblas.so and its cblas.h) not found');
  let nodeGyp;
  try {
    nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
    require.resolve('node-addon-api');
  } catch {
    giveUp('node-gyp or node-addon-api is not installed (run npm ci)');
  }
  const args = [
    nodeGyp,
    'rebuild',
    `--directory=${nativeDir}`,
    ...nodedirArgs(),
    '--',
    `-Dopenblas_lib=${blas.lib}`,
    `-Dopenblas_include=${dirname(blas.header)}`,
    ...marchArgs(),
  ];
  const build = run(process.execPath, args, { cwd: nativeDir });
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(logPath, `${[process.execPath, ...args].join(' ')}\n\n${build.out}`);
  if (!build.ok) giveUp(`the build failed, see ${logPath}`);
  // Load it in a fresh process (the loader sets the environment first): a build that links
  // but does not load must not pass for the fast path.
  const probe = run(process.execPath, [
    '-e',
    `const r = require(${JSON.stringify(join(nativeDir, 'index.cjs'))}).loadNativeAddon();` +
      'if (r.error) { console.error(r.error); process.exit(1); } const i = r.addon.info();' +
      'console.log(`${i.blas} ${i.coretype}, ${i.parallel} threads`);',
  ]);
  if (!probe.ok) giveUp(`the built addon does not load: ${probe.out.trim()}`);
  console.log(`sae-pipeline: built the native CPU training addon (${probe.out.trim()}; ${blas.lib})`);
}

main();
