'use strict';
/**
 * Loads the CPU training addon (native/build/Release/sae_native.node, built by
 * scripts/build-native.mjs) and says why not when it cannot.
 *
 * The environment is set BEFORE the addon loads, because OpenBLAS and libgomp read it once,
 * when the addon's libraries are loaded:
 *   - OMP_WAIT_POLICY=passive: waiting OpenMP threads sleep instead of spinning; with spinning,
 *     two threads stall each other whenever another process shares the cores;
 *   - OPENBLAS_CORETYPE=SkylakeX where the CPU has AVX-512: Debian's OpenBLAS 0.3.21 picks
 *     Haswell (AVX2) kernels on Zen 4 otherwise, at about half the speed.
 * A value the user already set is kept.
 */
const { existsSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

const ADDON_PATH = join(__dirname, 'build', 'Release', 'sae_native.node');
/** The command that enables the fast path (Debian/Ubuntu). */
const ENABLE_COMMAND = 'apt-get install libopenblas-dev libopenblas-openmp-dev && npm run build:native';

let loaded;

function cpuHasAvx512() {
  try {
    return /^flags\s*:.*\bavx512f\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    return false;
  }
}

function prepareEnvironment() {
  if (process.env.OMP_WAIT_POLICY === undefined) process.env.OMP_WAIT_POLICY = 'passive';
  if (process.env.OPENBLAS_CORETYPE === undefined && cpuHasAvx512()) process.env.OPENBLAS_CORETYPE = 'SkylakeX';
}

/** { addon, error }: the addon's exports, or null and a sentence saying why and how to fix it. */
function loadNativeAddon() {
  if (loaded) return loaded;
  if (!existsSync(ADDON_PATH)) {
    loaded = { addon: null, error: `the native CPU addon is not built (${ADDON_PATH} is missing); to build it: ${ENABLE_COMMAND}` };
    return loaded;
  }
  prepareEnvironment();
  try {
    loaded = { addon: require(ADDON_PATH), error: null };
  } catch (e) {
    loaded = { addon: null, error: `the native CPU addon does not load (${e.message}); to rebuild it: ${ENABLE_COMMAND}` };
  }
  return loaded;
}

module.exports = { loadNativeAddon, ADDON_PATH, ENABLE_COMMAND };
