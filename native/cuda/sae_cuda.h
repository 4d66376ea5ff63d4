// The JumpReLU SAE training step on a CUDA device: the same fused step as native/cpu/sae_core.h
// (forward, closed-form gradients, the three Adam groups, decoder projection and
// renormalisation, firing counters), with the state resident in device memory between steps:
// only the batch goes in and a few statistics come out.
//
// The math is src/sae/jumprelu.ts (JumpReluSae.trainStep), the reference this is tested against:
//
//   x' = x - b_dec (if applyBDecToInput)   z = x' W_enc + b_enc   thr = exp(log_threshold)
//   s = 1{z > thr}   f = z * s   x_hat = f W_dec + b_dec   err = x_hat - x   g = 2 err / B
//
// Differences from the CPU core, on purpose:
//   - the whole batch is one chunk (device memory is large; [B, d_sae] scratch twice);
//   - W_enc is kept in the API layout [d_in, d_sae] (no per-feature row walks on W_enc here);
//   - no sparse path: the five products are dense cuBLAS calls.
// As there, the weight groups have beta1 = 0 (ADAM_GROUPS), so their Adam m holds the gradient.
//
// This header has no CUDA types: the N-API addon (addon.cc) is plain C++ in both builds.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <string>

#include "../common/sae_shared.h"

namespace sae_cuda {

// Param, PARAM_NAMES, the Adam groups and scalars, StepStats and EvalStats: one definition for both engines.
using namespace sae_shared;

struct Config {
  int dIn;
  int dSae;
  bool applyBDecToInput;
  float bandwidth;
  /** TF32 tensor-core products (an explicit opt-in); float32 otherwise. */
  bool allowTf32 = false;
  /** Time each phase of the step (waits for the device after each: slower; benchmarks only). */
  bool profile = false;
};


/** A device array of T, zeroed on allocation, freed with its owner. */
template <class T>
class DeviceArray {
 public:
  DeviceArray() = default;
  explicit DeviceArray(size_t n);
  ~DeviceArray();
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  DeviceArray& operator=(DeviceArray&& o) noexcept;
  T* data() const { return p_; }
  size_t size() const { return n_; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

class SaeCuda {
 public:
  /** Allocates the state on the device (throws std::bad_alloc when it does not fit). */
  explicit SaeCuda(const Config& cfg);

  const Config& config() const { return cfg_; }
  size_t paramSize(Param p) const;
  // which: 0 = value, 1 = Adam m, 2 = Adam v; host arrays in the API layout.
  void setArray(int which, Param p, const float* host);
  void getArray(int which, Param p, float* host) const;
  void zeroArray(int which, Param p);
  void setSinceFired(const float* host);
  void getSinceFired(float* host) const;
  double adamSteps[N_GROUPS] = {0, 0, 0};

  /** One training step on rows x d_in host values; statistics from before the update. */
  StepStats step(const float* x, int rows, double lambda, double lr);
  /** Forward only: summed squared error and active count; fired[d_sae] = firings per feature. */
  EvalStats evaluate(const float* x, int rows, float* fired);
  double deadFraction(double windowSamples) const;

  /** Wall seconds per phase of the steps so far (Config::profile), for benchmarks. */
  const std::map<std::string, double>& profile() const { return profile_; }

  /** Device bytes held now (state + scratch). */
  size_t bytes() const;
  /** Device bytes a training at this shape holds at its peak. */
  static size_t estimateBytes(int dIn, int dSae, int rows);

 private:
  Config cfg_;
  DeviceArray<float> value_[N_PARAMS], m_[N_PARAMS], v_[N_PARAMS];
  DeviceArray<float> sinceFired_, thr_, bEncGradF_, dSaeScratch_, dInScratch_;
  DeviceArray<int> fired_, window_;                                  // [d_sae]
  DeviceArray<double> windowDot_, bEncSum_;                          // [d_sae]
  DeviceArray<double> colSq_, gColSum_, colSum_, colSqX_, colVar_;   // [d_in]
  // Batch scratch, grown on demand and kept across steps; the column reductions' partial sums
  // per segment of rows ([segments, cols], see step.cu).
  int rowsCap_ = 0;
  DeviceArray<float> x_, xin_, z_, f_, g_;
  DeviceArray<double> partA_, partB_;
  DeviceArray<int> intPartA_, intPartB_;
  static int segmentsFor(int cols, int rows);

  std::map<std::string, double> profile_;
  std::chrono::steady_clock::time_point lapStart_;
  void lap(const char* phase);

  DeviceArray<float>* slots(int which) const;
  void ensureScratch(int rows);
  const float* forward(const float* x, int rows, bool training);
  void backward(int rows, const float* xin, double lambda);
  void update(double lr, int rows);
  double sumDoubles(const DeviceArray<double>& a) const;
  double sumInts(const DeviceArray<int>& a) const;
};

/** GFLOP/s of C[m,n] = A[m,k] B[k,n] through the step's BLAS (device arrays; `reps` timed calls). */
double sgemmBench(int m, int n, int k, int reps, bool allowTf32);

}  // namespace sae_cuda
