// The JumpReLU SAE training step on the CPU, fused: forward, closed-form gradients, the three
// Adam groups, decoder projection and renormalisation, firing counters. Plain C++ over CBLAS
// (OpenBLAS) and OpenMP; addon.cc maps it onto the JS class that src/sae/engines/native.ts drives.
//
// The math is src/sae/jumprelu.ts (JumpReluSae.trainStep), the reference this is tested against:
//
//   x' = x - b_dec (if applyBDecToInput)   z = x' W_enc + b_enc   thr = exp(log_threshold)
//   s = 1{z > thr}   f = z * s   x_hat = f W_dec + b_dec   err = x_hat - x   g = 2 err / B
//
// Memory: the parameters and both Adam moments (6 x d_in x d_sae floats) plus scratch for one
// chunk of rows. Two choices keep it there:
//   - the batch is processed in chunks of rows (gradients are sums over rows, so chunking is
//     exact gradient accumulation); the [rows, d_sae] scratch is sized to one chunk;
//   - the weight groups have beta1 = 0 (ADAM_GROUPS), so their first moment IS the gradient:
//     the weight gradients are accumulated straight into m, no gradient buffer exists.
// W_enc is stored transposed ([d_sae, d_in], one contiguous row per feature, like W_dec) so that
// every per-feature update (Adam, projection, renormalisation) walks contiguous rows.
//
// Determinism: every reduction runs in a fixed order that does not depend on the thread count
// (column sums are split by columns, never by rows), so 1 and N threads agree up to the BLAS.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "../common/sae_shared.h"

namespace sae {

// Param, PARAM_NAMES, the Adam groups and scalars, StepStats and EvalStats: one definition for both engines.
using namespace sae_shared;

struct Config {
  int dIn;
  int dSae;
  bool applyBDecToInput;
  float bandwidth;
  int threads;
  /** Rows per chunk; 0: automatic (rowChunk). Tests set it small to exercise the accumulation. */
  int maxChunkRows = 0;
  /** PATH_AUTO: the sparse path once few features fire; PATH_DENSE / PATH_SPARSE force one (tests, benchmarks). */
  int path = 0;
};

/** A zero-initialised float array aligned to 64 bytes (throws std::bad_alloc). */
class FloatBuffer {
 public:
  FloatBuffer() = default;
  explicit FloatBuffer(size_t n);
  ~FloatBuffer();
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;
  FloatBuffer(FloatBuffer&& o) noexcept;
  FloatBuffer& operator=(FloatBuffer&& o) noexcept;
  float* data() const { return p_; }
  size_t size() const { return n_; }
  /** Sets every value to 0 (a large buffer gives its pages back instead of writing zeros). */
  void zero();

 private:
  static constexpr size_t MAPPED_MIN_BYTES = 1 << 20;
  float* p_ = nullptr;
  size_t n_ = 0;
  bool mapped_ = false;
};

enum Path { PATH_AUTO = 0, PATH_DENSE = 1, PATH_SPARSE = 2 };
/** The sparse path is taken once (firing + window entries) / (rows x d_sae) of the last step is below
 *  SPARSE_ENTER, and abandoned for the step when this batch's entries exceed SPARSE_BAIL of it. */
constexpr double SPARSE_ENTER = 0.05, SPARSE_BAIL = 0.10;
/** Bytes per kept entry (collected + grouped), and the most the entries may take. */
constexpr size_t SPARSE_ENTRY_BYTES = 24, SPARSE_ENTRY_BYTES_MAX = size_t(64) << 20;

class SaeCore {
 public:
  explicit SaeCore(const Config& cfg);

  const Config& config() const { return cfg_; }
  size_t paramSize(Param p) const;
  // Parameters and moments in the API layout (W_enc [d_in, d_sae] row-major).
  // which: 0 = value, 1 = Adam m, 2 = Adam v.
  void setArray(int which, Param p, const float* src);
  void getArray(int which, Param p, float* dst) const;
  void zeroArray(int which, Param p);
  // Values [offset, offset + count) of an array in the API layout: a checkpoint is written in
  // chunks, never a second copy of the state. For W_enc, offset and count are whole rows (d_sae).
  void getArrayRange(int which, Param p, size_t offset, size_t count, float* dst) const;
  // Frees what only training needs (Adam moments, step scratch): after the last step, the
  // evaluation and the export then run beside the weights alone. step() and the moments refuse after.
  void endTraining();
  bool training() const { return training_; }
  double adamSteps[N_GROUPS] = {0, 0, 0};
  float* sinceFired() const { return sinceFired_.data(); }

  /** One training step on rows x d_in values; statistics from before the update. */
  StepStats step(const float* x, int rows, double lambda, double lr);
  /** Forward only: summed squared error and active count; fired[d_sae] = firings per feature. */
  EvalStats evaluate(const float* x, int rows, float* fired);
  double deadFraction(double windowSamples) const;
  /** Whether the last step took the sparse path. */
  bool lastStepSparse() const { return lastPathSparse_; }

  /** CPU seconds (all threads) spent per phase of the steps so far, for benchmarks. */
  const std::map<std::string, double>& profile() const { return profile_; }

  /** Bytes held now (state + scratch). */
  size_t bytes() const;
  /** Bytes a training at this shape holds at its peak (state + scratch for batches of `rows`). */
  static size_t estimateBytes(int dIn, int dSae, int rows);
  /** Rows per chunk: the [chunk, d_sae] scratch stays near 64 MiB whatever the batch. */
  static int rowChunk(int dSae, int rows);

 private:
  Config cfg_;
  bool training_ = true;
  FloatBuffer value_[N_PARAMS], m_[N_PARAMS], v_[N_PARAMS];  // W_ENC slots hold W_enc^T
  FloatBuffer sinceFired_;
  // Per-feature and per-input accumulators of one step (double: they become statistics or grads).
  FloatBuffer thr_;
  std::vector<int32_t> firedCount_, windowCount_;  // [d_sae]
  std::vector<double> windowDot_, bEncGrad_;        // [d_sae]
  std::vector<double> gColSum_, colSq_;                                  // [d_in]
  // Chunk scratch, grown on demand and kept across steps.
  int chunkCap_ = 0;
  FloatBuffer xin_, z_, f_, g_;

  int chunkRows(int rows) const;
  void useThreads(int rows) const;
  void ensureScratch(int rows);
  const float* encoderInput(const float* x, int n);
  void encode(const float* xin, int n);
  // Sparse path (see sae_core.cc).
  struct Entry {
    int32_t row, col;
    float z;
  };
  struct Segment {
    int thread;
    size_t begin, end;
  };
  std::vector<std::vector<Entry>> threadEntries_;
  std::vector<Segment> segments_;
  std::vector<size_t> colStart_;                // [d_sae + 1]: feature j's entries are [colStart_[j], colStart_[j+1])
  std::vector<int32_t> entryRow_;
  std::vector<float> entryZ_, entryDf_;
  FloatBuffer gFull_;                           // g for the whole batch [rows, d_in]
  double lastDensity_ = 1.0;
  bool lastPathSparse_ = false;

  std::map<std::string, double> profile_;
  double lapStart_ = 0;
  void lap(const char* phase);

  void startBatch();
  void denseBackward(const float* x, int rows);
  StepStats finish(const float* x, int rows, double lambda, double lr, bool sparse);
  void biasGradients(double lambda, int rows, float* gThr);
  bool sparseBackward(const float* x, int rows);
  size_t sparseCapacity(int rows) const;
  bool collectEntries(const float* x, int rows);
  void decodeFromEntries(int rows);
  void entryGradients();
  void sparseWeightGradients(const float* x, int j);
  void errorPass(const float* x, float* G, int n, float gradScale, bool training);
  void gateForward(int n, bool training);
  void decodeError(const float* x, int n, float gradScale, bool training);
  void gateBackward(int n);
  double totalVariance(const float* x, int rows) const;
};

}  // namespace sae
