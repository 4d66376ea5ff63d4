// A plain matrix-product kernel (one thread per element of C, float sums in k order): the
// device build's fallback where no cuBLAS can be opened, and the emulation build's second
// BLAS (SAE_CUDA_BLAS=kernel), so that this kernel's arithmetic is tested too. Row-major, as
// device.h's sgemm. Slow next to cuBLAS: it keeps a device without cuBLAS usable, no more.
#pragma once

#include "device.h"

namespace sae_cuda {

__global__ void gemmKernel(bool transA, bool transB, int m, int n, int k, float alpha, const float* __restrict__ A,
                           int lda, const float* __restrict__ B, int ldb, float beta, float* __restrict__ C, int ldc) {
  const size_t e = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= size_t(m) * n) return;
  const size_t i = e / n, j = e % n;
  float s = 0;
  for (int p = 0; p < k; p++) {
    const float a = transA ? A[size_t(p) * lda + i] : A[i * lda + p];
    const float b = transB ? B[j * ldb + p] : B[size_t(p) * ldb + j];
    s += a * b;
  }
  float* c = C + i * ldc + j;
  *c = beta == 0.f ? alpha * s : alpha * s + beta * *c;
}

inline void gemmWithKernel(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda,
                           const float* B, int ldb, float beta, float* C, int ldc) {
  const size_t elements = size_t(m) * n;
  LAUNCH(gemmKernel, unsigned((elements + 255) / 256), 256, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C,
         ldc);
}

}  // namespace sae_cuda
