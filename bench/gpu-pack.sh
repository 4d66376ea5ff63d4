#!/usr/bin/env bash
# Prepares what a GPU machine needs to run bench/gpu-check.sh from a working-tree copy, on a
# machine with nvcc (README: GPU): the device build of the CUDA addon and a compressed node
# binary (the GPU machine may have no Node.js). Prints the paths to carry and their sizes
# (a lent machine takes at most 64 MiB of carried ignored files).
#
#   bash bench/gpu-pack.sh
set -euo pipefail
cd "$(dirname "$0")/.."
node scripts/build-cuda.mjs --device
[ -f native/build/cuda/sae_cuda.node ] || { echo "gpu-pack: the CUDA addon did not build (see native/build/cuda/build-cuda.log)"; exit 1; }
mkdir -p native/build/node
if [ ! -f native/build/node/node.xz ] || [ "$(command -v node)" -nt native/build/node/node.xz ]; then
  xz -T0 -6 < "$(readlink -f "$(command -v node)")" > native/build/node/node.xz.tmp
  mv native/build/node/node.xz.tmp native/build/node/node.xz
fi
du -ch native/build/cuda/sae_cuda.node native/build/node/node.xz
echo "gpu-pack: carry native/build/cuda/sae_cuda.node and native/build/node; run: bash bench/gpu-check.sh \"\$OUT\""
