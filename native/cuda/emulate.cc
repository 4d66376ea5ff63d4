// device.h for the emulation build: host memory, launches as loops (device.h), OpenBLAS for the
// products (or gemm_kernel.h's kernel with SAE_CUDA_BLAS=kernel). It checks the kernels'
// arithmetic on a machine without a GPU; it is not a device.
#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "device.h"
#include "gemm_kernel.h"

dim3 blockIdx, threadIdx, blockDim, gridDim;

namespace sae_cuda {

namespace {
bool useKernel() {
  const char* b = std::getenv("SAE_CUDA_BLAS");
  return b && std::string(b) == "kernel";
}

void* allocZeroed(size_t bytes) {
  void* p = std::calloc(bytes ? bytes : 1, 1);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

bool emulated() { return true; }
std::string deviceError() { return ""; }
std::string deviceName() { return "emulated on the CPU (host C++ build of the CUDA kernels; not a GPU)"; }
size_t deviceFreeBytes() { return 0; }

float* allocFloats(size_t n) { return static_cast<float*>(allocZeroed(n * sizeof(float))); }
double* allocDoubles(size_t n) { return static_cast<double*>(allocZeroed(n * sizeof(double))); }
int* allocInts(size_t n) { return static_cast<int*>(allocZeroed(n * sizeof(int))); }
void freeDevice(void* p) { std::free(p); }
void toDevice(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void toHost(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
void zeroDevice(void* p, size_t bytes) { std::memset(p, 0, bytes); }
void synchronize() {}

void sgemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc) {
  if (useKernel()) return gemmWithKernel(transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, m, n, k, alpha, A,
              lda, B, ldb, beta, C, ldc);
}
std::string blasError() { return ""; }
std::string blasName() { return useKernel() ? "gemm kernel (emulation)" : "OpenBLAS (emulation)"; }
void blasAllowTf32(bool) {}

}  // namespace sae_cuda
