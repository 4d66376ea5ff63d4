// The few device facilities the CUDA step uses, in two builds of the same source:
//   - the device build (nvcc): CUDA kernels, device memory, cuBLAS opened at run time (blas.cc);
//   - the emulation build (g++ -DSAE_CUDA_EMULATE -x c++): each kernel launch becomes a loop over
//     its blocks and threads on the host, device memory is host memory, and the products go to
//     OpenBLAS. It exists so the kernels' arithmetic is tested on machines without a GPU; it says
//     nothing about the device (launch limits, memory, the driver, cuBLAS itself).
//
// Kernels written for both builds follow one rule: a thread never waits for another (no shared
// memory, no __syncthreads, no warp shuffles), so running the threads one after another is a
// faithful schedule. Every reduction is one thread's loop in a fixed order, hence deterministic.
#pragma once

#include <cstddef>
#include <string>

#ifdef SAE_CUDA_EMULATE

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
// The launch's indices, as CUDA's built-in variables (1-D launches only).
extern dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __restrict__ __restrict

// LAUNCH(kernel, blocks, threads, args...): every (block, thread) in turn, on the calling thread.
#define LAUNCH(kernel, blocks, threads, ...)                                    \
  do {                                                                          \
    gridDim = dim3(blocks);                                                     \
    blockDim = dim3(threads);                                                   \
    for (unsigned b_ = 0; b_ < gridDim.x; b_++)                                 \
      for (unsigned t_ = 0; t_ < blockDim.x; t_++) {                            \
        blockIdx = dim3(b_);                                                    \
        threadIdx = dim3(t_);                                                   \
        kernel(__VA_ARGS__);                                                    \
      }                                                                         \
  } while (0)

#else

#include <cuda_runtime.h>

#define LAUNCH(kernel, blocks, threads, ...)                  \
  do {                                                        \
    kernel<<<(blocks), (threads)>>>(__VA_ARGS__);             \
    sae_cuda::check(cudaGetLastError(), #kernel " launch");  \
  } while (0)

#endif

namespace sae_cuda {

#ifndef SAE_CUDA_EMULATE
/** Throws std::runtime_error naming `what` when a CUDA runtime call failed. */
void check(cudaError_t e, const char* what);
#endif

/** Whether this is the host emulation build. */
bool emulated();
/** "" when a device can run the step; else why not ("no CUDA device: ..."). */
std::string deviceError();
/** The device's name and capability, e.g. "NVIDIA H200 (sm_90, 139.8 GiB)"; emulation: says so. */
std::string deviceName();
/** Bytes free on the device (emulation: 0 = unknown). */
size_t deviceFreeBytes();

/** Device memory: zeroed on allocation; throws std::bad_alloc when the device has no room. */
float* allocFloats(size_t n);
double* allocDoubles(size_t n);
int* allocInts(size_t n);
void freeDevice(void* p);
void toDevice(void* dst, const void* src, size_t bytes);
void toHost(void* dst, const void* src, size_t bytes);
void zeroDevice(void* p, size_t bytes);
/** Waits for the queued kernels (errors of earlier launches surface here). */
void synchronize();

/**
 * The matrix products, row-major like the CPU core: C[m,n] = alpha op(A) op(B) + beta C, with
 * op(A) [m,k] and op(B) [k,n]; device pointers. cuBLAS (column-major) in the device build,
 * OpenBLAS in the emulation.
 */
void sgemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc);
/** "" when the BLAS is ready; else why not. Opens cuBLAS once (dlopen of libcublas.so.13, .12). */
std::string blasError();
/** The BLAS in use, e.g. "cuBLAS 13.0.0 (libcublas.so.13)" or "OpenBLAS (emulation)". */
std::string blasName();
/** TF32 tensor-core products on (an explicit opt-in) or off (float32, the default). */
void blasAllowTf32(bool allow);

}  // namespace sae_cuda
