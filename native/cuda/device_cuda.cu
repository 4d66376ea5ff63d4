// device.h for the device build: the CUDA runtime (linked statically; it opens the driver,
// libcuda, only when first used, so the addon loads on a machine without a GPU) and cuBLAS,
// opened at run time with dlopen: the toolkit that builds the addon need not ship it, and a
// machine without it still loads the addon and falls back to gemm_kernel.h's kernel.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "device.h"
#include "gemm_kernel.h"

namespace sae_cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(e));
}

bool emulated() { return false; }

std::string deviceError() {
  // Without the driver library the runtime's own message ("driver version is insufficient") misleads.
  void* driver = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!driver) return "no CUDA device (no NVIDIA driver: libcuda.so.1 not found)";
  dlclose(driver);
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear it: later calls must not inherit it
    return std::string("no CUDA device (") + cudaGetErrorString(e) + ")";
  }
  if (n == 0) return "no CUDA device (the driver sees none; CUDA_VISIBLE_DEVICES may hide them)";
  return "";
}

std::string deviceName() {
  cudaDeviceProp p;
  check(cudaGetDeviceProperties(&p, 0), "cudaGetDeviceProperties");
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  const auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  char mem[32];
  snprintf(mem, sizeof mem, "%.1f GiB", double(p.totalGlobalMem) / (1ull << 30));
  return std::string(p.name) + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ", " + mem +
         ", CUDA runtime " + version(runtime) + ", driver " + version(driver) + ")";
}

size_t deviceFreeBytes() {
  size_t freeBytes = 0, total = 0;
  check(cudaMemGetInfo(&freeBytes, &total), "cudaMemGetInfo");
  return freeBytes;
}

template <class T>
static T* allocate(size_t n) {
  void* p = nullptr;
  const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    throw std::bad_alloc();
  }
  check(e, "cudaMalloc");
  check(cudaMemset(p, 0, n * sizeof(T)), "cudaMemset");
  return static_cast<T*>(p);
}
float* allocFloats(size_t n) { return allocate<float>(n); }
double* allocDoubles(size_t n) { return allocate<double>(n); }
int* allocInts(size_t n) { return allocate<int>(n); }
void freeDevice(void* p) {
  if (p) cudaFree(p);  // never throws: called from destructors
}
void toDevice(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy to the device");
}
void toHost(void* dst, const void* src, size_t bytes) {
  check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy to the host");
}
void zeroDevice(void* p, size_t bytes) { check(cudaMemset(p, 0, bytes), "cudaMemset"); }
void synchronize() { check(cudaDeviceSynchronize(), "a kernel of the step"); }

// ---------------------------------------------------------------------------------------------
// cuBLAS, opened once. Its few entry points are declared here (the toolkit on the build machine
// has no cuBLAS headers); the signatures are cuBLAS's v2 API, stable since CUDA 4.

namespace {

using Handle = void*;
constexpr int OP_N = 0, OP_T = 1;
constexpr int DEFAULT_MATH = 0, TF32_TENSOR_OP_MATH = 3;

struct Cublas {
  std::string error, name;
  Handle handle = nullptr;
  int (*create)(Handle*) = nullptr;
  int (*sgemm)(Handle, int, int, int, int, int, const float*, const float*, int, const float*, int, const float*,
               float*, int) = nullptr;
  int (*setMathMode)(Handle, int) = nullptr;
  int (*getVersion)(Handle, int*) = nullptr;
};

// $SAE_CUBLAS (a path) first, then the loader's search path, then the usual toolkit folders.
std::vector<std::string> candidates() {
  std::vector<std::string> c;
  if (const char* p = std::getenv("SAE_CUBLAS")) c.push_back(p);
  for (const char* so : {"libcublas.so.13", "libcublas.so.12"}) {
    c.push_back(so);
    for (const char* dir : {"/usr/local/cuda/lib64/", "/usr/local/cuda-13.0/lib64/", "/usr/local/cuda-12/lib64/",
                            "/usr/lib/x86_64-linux-gnu/", "/opt/cuda/lib64/"})
      c.push_back(std::string(dir) + so);
  }
  return c;
}

Cublas& cublas() {
  static Cublas b;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = nullptr;
    std::string tried, opened;
    for (const std::string& path : candidates()) {
      if ((lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL))) {
        opened = path;
        break;
      }
      const char* why = dlerror();
      if (tried.empty()) tried = why ? why : path;
    }
    if (!lib) {
      b.error = "cuBLAS not found (libcublas.so.13 / .12; set SAE_CUBLAS to its path): " + tried;
      return;
    }
    b.create = reinterpret_cast<decltype(b.create)>(dlsym(lib, "cublasCreate_v2"));
    b.sgemm = reinterpret_cast<decltype(b.sgemm)>(dlsym(lib, "cublasSgemm_v2"));
    b.setMathMode = reinterpret_cast<decltype(b.setMathMode)>(dlsym(lib, "cublasSetMathMode"));
    b.getVersion = reinterpret_cast<decltype(b.getVersion)>(dlsym(lib, "cublasGetVersion_v2"));
    if (!b.create || !b.sgemm || !b.setMathMode || !b.getVersion) {
      b.error = opened + " lacks cublasCreate_v2 / cublasSgemm_v2 / cublasSetMathMode / cublasGetVersion_v2";
      return;
    }
    const int status = b.create(&b.handle);
    if (status != 0) {
      b.error = opened + ": cublasCreate failed with status " + std::to_string(status);
      return;
    }
    int v = 0;
    b.getVersion(b.handle, &v);
    b.setMathMode(b.handle, DEFAULT_MATH);
    b.name = "cuBLAS " + std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
             std::to_string(v % 100) + " (" + opened + ")";
  });
  return b;
}

}  // namespace

std::string blasError() { return cublas().error; }
std::string blasName() {
  const Cublas& b = cublas();
  return b.error.empty() ? b.name : "gemm kernel (" + b.error + ")";
}

void blasAllowTf32(bool allow) {
  Cublas& b = cublas();
  if (b.error.empty()) b.setMathMode(b.handle, allow ? TF32_TENSOR_OP_MATH : DEFAULT_MATH);
}

// Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: the operands swap.
void sgemm(bool transA, bool transB, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
           float beta, float* C, int ldc) {
  Cublas& b = cublas();
  if (!b.error.empty()) return gemmWithKernel(transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  const int status = b.sgemm(b.handle, transB ? OP_T : OP_N, transA ? OP_T : OP_N, n, m, k, &alpha, B, ldb, A, lda,
                             &beta, C, ldc);
  if (status != 0) throw std::runtime_error("cublasSgemm failed with status " + std::to_string(status));
}

}  // namespace sae_cuda
