#!/usr/bin/env bash
# The CUDA engine's check on a GPU machine, in one script (README: GPU). Meant for a lent machine
# that gets a copy of the working tree plus a few carried build outputs, and has 5 minutes:
#
#   bash bench/gpu-check.sh [OUT_DIR]        (default: $OUT, else ./gpu-check-out)
#
# It needs, in order of preference (each step says what it found):
#   node     $NODE, `node` on PATH, or native/build/node/node.xz (carried: `xz -9 < $(command -v node)`);
#   addon    native/build/cuda/sae_cuda.node (carried from `npm run build:cuda`), or nvcc here to build it
#            (that also needs node_modules/node-addon-api and Node's headers);
#   cuBLAS   libcublas.so.13 / .12 found by the loader, in a CUDA folder or a Python wheel
#            (SAE_CUBLAS=<path> to force one); without it the step runs on a plain gemm kernel.
# Then bench/gpu-check.mjs: parity against a float64 reference (and the CPU addon where it loads),
# samples/s at 512/4096/1024, 2048/16384/1024, 2048/16384/4096, cuBLAS GFLOP/s, into
# OUT_DIR/gpu-check.json; the log is OUT_DIR/gpu-check.log. Exit 0 only when everything passed.
# GPU_CHECK_NO_BUILD=1: never build here (stop instead).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-$PWD/gpu-check-out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
LOG="$OUT_DIR/gpu-check.log"
exec > >(tee -a "$LOG") 2>&1
T0=$(date +%s)

say() { echo "[gpu-check +$(($(date +%s) - T0))s] $*"; }
# step NAME SECONDS CMD...: runs CMD under a time limit, says how it went and how long it took.
step() {
  local name=$1 limit=$2 t=$(date +%s) rc=0
  shift 2
  say "$name ..."
  timeout "$limit" "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    say "$name: ok ($(($(date +%s) - t))s)"
  else
    say "$name: FAILED (exit $rc$([ "$rc" -eq 124 ] && echo ", over ${limit}s"), $(($(date +%s) - t))s)"
  fi
  return "$rc"
}
# fail MESSAGE: the one-line reason into the JSON too, then stop.
fail() {
  say "STOP: $*"
  printf '{"error": "%s"}\n' "$(echo "$*" | sed 's/["\\]/\\&/g')" > "$OUT_DIR/gpu-check.json"
  exit 1
}

# 1. The machine (for the record; nothing here is required).
step "machine" 30 bash -c 'uname -a; (ldd --version | head -1) || true; nproc; free -g | head -2 || true;
  if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv;
  else echo "no nvidia-smi"; fi; command -v nvcc && nvcc --version | tail -2 || echo "no nvcc"' || true
say "CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES-<unset>}"

# 2. Node.
NODE_BIN="${NODE:-$(command -v node || true)}"
if [ -z "$NODE_BIN" ] && [ -f native/build/node/node.xz ]; then
  NODE_BIN="$OUT_DIR/../node-bin/node"
  mkdir -p "$(dirname "$NODE_BIN")"
  if command -v xz >/dev/null; then
    step "unpack node (xz)" 60 bash -c "xz -dc native/build/node/node.xz > '$NODE_BIN'" || fail "cannot unpack native/build/node/node.xz"
  else
    UNXZ="import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))"
    step "unpack node (python lzma)" 60 python3 -c "$UNXZ" \
      native/build/node/node.xz "$NODE_BIN" || fail "cannot unpack native/build/node/node.xz (no xz, python3 lzma failed)"
  fi
  chmod +x "$NODE_BIN"
fi
[ -n "$NODE_BIN" ] || fail "no node: set NODE, put node on PATH, or carry native/build/node/node.xz"
step "node" 20 "$NODE_BIN" -e 'console.log(process.version, process.arch)' || fail "$NODE_BIN does not run (glibc too old for this binary?)"

# 3. cuBLAS: where the loader will not find it by name, point SAE_CUBLAS at it.
if [ -z "${SAE_CUBLAS:-}" ] && ! (ldconfig -p 2>/dev/null | grep -qE 'libcublas\.so\.1[23]'); then
  FOUND="$(timeout 40 find /usr/local /usr/lib /usr/lib64 /opt /usr/local/lib/python3* /usr/lib/python3* "${HOME:-/root}" \
    -maxdepth 7 -name 'libcublas.so.1[23]*' 2>/dev/null | grep -v Lt | sort -r | head -1 || true)"
  if [ -n "$FOUND" ]; then
    export SAE_CUBLAS="$FOUND"
    say "cuBLAS: $FOUND"
  else
    say "cuBLAS: not found (the step falls back to a plain gemm kernel: slow)"
  fi
else
  say "cuBLAS: ${SAE_CUBLAS:-found by the loader}"
fi

# 4. The addon: the carried build if it loads, else build it here.
# SAE_CUDA_ADDON=<path> checks another build (a dry run on the emulation build: see README).
ADDON="${SAE_CUDA_ADDON:-native/build/cuda/sae_cuda.node}"
export SAE_CUDA_ADDON="$(readlink -f "$ADDON" 2>/dev/null || echo "$ADDON")"
PROBE="const i = require(process.env.SAE_CUDA_ADDON).info(); console.log(JSON.stringify(i)); process.exit(i.error ? 1 : 0)"
if [ -f "$ADDON" ] && step "load the carried addon" 60 "$NODE_BIN" -e "$PROBE"; then
  :
elif [ -z "${GPU_CHECK_NO_BUILD:-}" ] && (command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ]); then
  step "build the addon here" 240 "$NODE_BIN" scripts/build-cuda.mjs --force --device || true
  [ -f "$ADDON" ] || fail "the addon did not build: see native/build/cuda/build-cuda.log"
  cp native/build/cuda/build-cuda.log "$OUT_DIR/" 2>/dev/null || true
  step "load the built addon" 60 "$NODE_BIN" -e "$PROBE" || fail "the addon built here does not run (see the info above)"
else
  WHY=$([ -f "$ADDON" ] && echo 'does not run here (see above)' || echo 'is missing')
  fail "no usable addon: $ADDON $WHY and it cannot be built here (no nvcc, or GPU_CHECK_NO_BUILD is set)"
fi

# 5. The check itself; its JSON is written after every section.
RC=0
# GPU_CHECK_ARGS: more options for gpu-check.mjs (e.g. --seconds 1 --shapes 512/4096/1024).
# shellcheck disable=SC2086
step "parity, samples/s, cuBLAS GFLOP/s" 240 "$NODE_BIN" bench/gpu-check.mjs --out "$OUT_DIR/gpu-check.json" ${GPU_CHECK_ARGS:-} || RC=$?
say "done in $(($(date +%s) - T0))s: $OUT_DIR/gpu-check.json"
exit "$RC"
