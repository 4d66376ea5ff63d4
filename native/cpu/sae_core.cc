#include "sae_core.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <new>

#include <sys/mman.h>

namespace sae {

// ---------------------------------------------------------------------------------------------
// Buffers and parallel helpers

// Large buffers are anonymous mappings: zero pages that become resident only when written, so
// that Adam moments zeroed at a fresh start cost no memory before the first step (when the
// caller's copy of the initial weights is already freed), and zeroing gives the pages back.
static size_t bytesOf(size_t n) { return ((n * sizeof(float) + 4095) / 4096) * 4096; }

FloatBuffer::FloatBuffer(size_t n) : n_(n) {
  if (n == 0) return;
  mapped_ = bytesOf(n) >= MAPPED_MIN_BYTES;
  if (mapped_) {
    void* p = mmap(nullptr, bytesOf(n), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    p_ = static_cast<float*>(p);
  } else {
    p_ = static_cast<float*>(std::aligned_alloc(64, bytesOf(n)));
    if (!p_) throw std::bad_alloc();
    std::memset(p_, 0, bytesOf(n));
  }
}
FloatBuffer::~FloatBuffer() {
  if (mapped_) munmap(p_, bytesOf(n_));
  else std::free(p_);
}
void FloatBuffer::zero() {
  if (mapped_ && madvise(p_, bytesOf(n_), MADV_DONTNEED) == 0) return;  // reads as zeros from now on
  std::memset(p_, 0, n_ * sizeof(float));
}
FloatBuffer::FloatBuffer(FloatBuffer&& o) noexcept : p_(o.p_), n_(o.n_), mapped_(o.mapped_) {
  o.p_ = nullptr, o.n_ = 0, o.mapped_ = false;
}
FloatBuffer& FloatBuffer::operator=(FloatBuffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(n_, o.n_);
  std::swap(mapped_, o.mapped_);
  return *this;
}

namespace {

// Thread t's share of [0, n) when split into T contiguous blocks on 16-float (cache line) bounds.
void blockOf(int n, int t, int T, int& lo, int& hi) {
  const int units = (n + 15) / 16, per = units / T, extra = units % T;
  const int u0 = t * per + std::min(t, extra), u1 = u0 + per + (t < extra ? 1 : 0);
  lo = std::min(n, u0 * 16);
  hi = std::min(n, u1 * 16);
}

// Runs body(lo, hi) on disjoint column ranges, one per thread. Column sums stay in row order
// within each column, so their result does not depend on the thread count.
template <class Body>
void forColumnBlocks(int n, const Body& body) {
#pragma omp parallel
  {
    int lo, hi;
    blockOf(n, omp_get_thread_num(), omp_get_num_threads(), lo, hi);
    if (lo < hi) body(lo, hi);
  }
}

double orderedSum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

// Row-major [rows, cols] -> [cols, rows], in cache-sized tiles.
void transpose(const float* src, float* dst, int rows, int cols) {
  constexpr int T = 32;
#pragma omp parallel for schedule(static)
  for (int r0 = 0; r0 < rows; r0 += T)
    for (int c0 = 0; c0 < cols; c0 += T)
      for (int r = r0; r < std::min(rows, r0 + T); r++)
        for (int c = c0; c < std::min(cols, c0 + T); c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

// One Adam update of n values. With beta1 = 0 the caller has put the gradient in m already
// (grad == nullptr); otherwise m is the running first moment and grad the new gradient.
void adam(float* __restrict p, float* __restrict m, float* __restrict v, const float* __restrict grad, size_t n,
          const AdamScalars& a) {
  if (!grad) {
    for (size_t i = 0; i < n; i++) {
      const float g = m[i];
      v[i] = v[i] * a.beta2 + g * g * a.oneMinusBeta2;
      p[i] = p[i] - g / (std::sqrt(v[i]) / a.sqrtBc2 + a.eps) * a.stepSize;
    }
    return;
  }
  for (size_t i = 0; i < n; i++) {
    const float g = grad[i];
    m[i] = m[i] * a.beta1 + g * a.oneMinusBeta1;
    v[i] = v[i] * a.beta2 + g * g * a.oneMinusBeta2;
    p[i] = p[i] - m[i] / (std::sqrt(v[i]) / a.sqrtBc2 + a.eps) * a.stepSize;
  }
}

double dot(const float* __restrict a, const float* __restrict b, int n) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += double(a[i]) * b[i];
  return s;
}

// Float dot product; the lanes' order is fixed at compile time, not by the thread count.
float dotf(const float* __restrict a, const float* __restrict b, int n) {
  float s = 0;
#pragma omp simd reduction(+ : s)
  for (int i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// State

SaeCore::SaeCore(const Config& cfg) : cfg_(cfg) {
  for (int p = 0; p < N_PARAMS; p++) {
    value_[p] = FloatBuffer(paramSize(Param(p)));
    m_[p] = FloatBuffer(paramSize(Param(p)));
    v_[p] = FloatBuffer(paramSize(Param(p)));
  }
  sinceFired_ = FloatBuffer(cfg.dSae);
  thr_ = FloatBuffer(cfg.dSae);
  firedCount_.resize(cfg.dSae);
  windowCount_.resize(cfg.dSae);
  windowDot_.resize(cfg.dSae);
  bEncGrad_.resize(cfg.dSae);
  gColSum_.resize(cfg.dIn);
  colSq_.resize(cfg.dIn);
}

size_t SaeCore::paramSize(Param p) const {
  switch (p) {
    case W_ENC: case W_DEC: return size_t(cfg_.dIn) * cfg_.dSae;
    case B_ENC: case LOG_THRESHOLD: return cfg_.dSae;
    default: return cfg_.dIn;
  }
}

static FloatBuffer* slots(int which, FloatBuffer* value, FloatBuffer* m, FloatBuffer* v) {
  return which == 0 ? value : which == 1 ? m : v;
}

void SaeCore::setArray(int which, Param p, const float* src) {
  useThreads(0);
  float* dst = slots(which, value_, m_, v_)[p].data();
  if (p == W_ENC) transpose(src, dst, cfg_.dIn, cfg_.dSae);
  else std::memcpy(dst, src, paramSize(p) * sizeof(float));
}

void SaeCore::zeroArray(int which, Param p) { slots(which, value_, m_, v_)[p].zero(); }

void SaeCore::getArray(int which, Param p, float* dst) const {
  useThreads(0);
  const float* src = slots(which, const_cast<FloatBuffer*>(value_), const_cast<FloatBuffer*>(m_),
                           const_cast<FloatBuffer*>(v_))[p].data();
  if (p == W_ENC) transpose(src, dst, cfg_.dSae, cfg_.dIn);
  else std::memcpy(dst, src, paramSize(p) * sizeof(float));
}

void SaeCore::getArrayRange(int which, Param p, size_t offset, size_t count, float* dst) const {
  const float* src = slots(which, const_cast<FloatBuffer*>(value_), const_cast<FloatBuffer*>(m_),
                           const_cast<FloatBuffer*>(v_))[p].data();
  if (p != W_ENC) {
    std::memcpy(dst, src + offset, count * sizeof(float));
    return;
  }
  // Rows [r0, r1) of W_enc [d_in, d_sae] are columns of the stored W_enc^T [d_sae, d_in]: gathered
  // in 64 x 64 tiles so that both sides stay in cache.
  const size_t dIn = cfg_.dIn, dSae = cfg_.dSae, r0 = offset / dSae, r1 = (offset + count) / dSae;
  for (size_t rb = r0; rb < r1; rb += 64)
    for (size_t cb = 0; cb < dSae; cb += 64)
      for (size_t c = cb; c < std::min(cb + 64, dSae); c++)
        for (size_t r = rb; r < std::min(rb + 64, r1); r++) dst[(r - r0) * dSae + c] = src[c * dIn + r];
}

void SaeCore::endTraining() {
  for (int p = 0; p < N_PARAMS; p++) m_[p] = FloatBuffer(), v_[p] = FloatBuffer();
  gFull_ = FloatBuffer();
  for (auto& v : threadEntries_) std::vector<Entry>().swap(v);
  std::vector<int32_t>().swap(entryRow_);
  std::vector<float>().swap(entryZ_);
  std::vector<float>().swap(entryDf_);
  training_ = false;
}

int SaeCore::rowChunk(int dSae, int rows) {
  const long budget = 64L << 20;  // bytes of the two [chunk, d_sae] scratch arrays
  const long fit = budget / (2L * sizeof(float) * dSae) / 64 * 64;
  return int(std::min<long>(rows, std::max<long>(256, fit)));
}

static size_t stateFloats(int dIn, int dSae) {
  const size_t params = 2 * size_t(dIn) * dSae + 2 * size_t(dSae) + dIn;
  return 3 * params + 2 * size_t(dSae);  // values, m, v; sinceFired, thresholds
}

static size_t accumulatorBytes(int dIn, int dSae) { return size_t(dSae) * (2 * 4 + 2 * 8) + size_t(dIn) * 2 * 8; }

size_t SaeCore::estimateBytes(int dIn, int dSae, int rows) {
  const size_t chunk = rowChunk(dSae, rows);
  const size_t dense = 4 * chunk * (2 * size_t(dSae) + 2 * size_t(dIn));
  // The sparse path keeps the dense scratch and adds g for the whole batch and its entries.
  const size_t entries = size_t(std::min(SPARSE_BAIL * rows * double(dSae), double(SPARSE_ENTRY_BYTES_MAX) / SPARSE_ENTRY_BYTES));
  const size_t sparse = 4 * size_t(rows) * dIn + entries * SPARSE_ENTRY_BYTES;
  return 4 * stateFloats(dIn, dSae) + dense + sparse + accumulatorBytes(dIn, dSae);
}

size_t SaeCore::bytes() const {
  const size_t scratch = xin_.size() + z_.size() + f_.size() + g_.size() + gFull_.size();
  size_t entries = entryRow_.capacity() * 4 + entryZ_.capacity() * 4 + entryDf_.capacity() * 4;
  for (const auto& v : threadEntries_) entries += v.capacity() * sizeof(Entry);
  return 4 * (stateFloats(cfg_.dIn, cfg_.dSae) + scratch) + entries + accumulatorBytes(cfg_.dIn, cfg_.dSae);
}

static double cpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Charges the CPU time since the previous lap to `phase` (a handful of clock reads per step).
void SaeCore::lap(const char* phase) {
  const double now = cpuSeconds();
  if (phase) profile_[phase] += now - lapStart_;
  lapStart_ = now;
}

// Threads for a call on `rows` rows: each thread gets at least MIN_WORK_PER_THREAD multiply-adds
// of a product, else waking it costs more than it saves (small SAEs; and under load a woken
// thread may wait a whole scheduler tick). Results do not depend on the count.
void SaeCore::useThreads(int rows) const {
  constexpr double MIN_WORK_PER_THREAD = double(1 << 23);
  const double work = double(rows) * cfg_.dIn * cfg_.dSae;
  const int threads = rows <= 0 ? cfg_.threads : int(std::max(1.0, std::min<double>(cfg_.threads, work / MIN_WORK_PER_THREAD)));
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
}

int SaeCore::chunkRows(int rows) const {
  return cfg_.maxChunkRows > 0 ? std::min(rows, cfg_.maxChunkRows) : rowChunk(cfg_.dSae, rows);
}

void SaeCore::ensureScratch(int rows) {
  const int need = chunkRows(rows);
  if (need <= chunkCap_) return;
  // Free first: the old and new scratch never coexist.
  xin_ = FloatBuffer(), z_ = FloatBuffer(), f_ = FloatBuffer(), g_ = FloatBuffer();
  chunkCap_ = 0;
  if (cfg_.applyBDecToInput) xin_ = FloatBuffer(size_t(need) * cfg_.dIn);
  z_ = FloatBuffer(size_t(need) * cfg_.dSae);
  f_ = FloatBuffer(size_t(need) * cfg_.dSae);
  g_ = FloatBuffer(size_t(need) * cfg_.dIn);
  chunkCap_ = need;
}

double SaeCore::deadFraction(double windowSamples) const {
  const float w = float(windowSamples);
  const float* sf = sinceFired_.data();
  long dead = 0;
  for (int j = 0; j < cfg_.dSae; j++) dead += sf[j] >= w;
  return double(dead) / cfg_.dSae;
}

// ---------------------------------------------------------------------------------------------
// The pieces of a step, on one chunk of n rows

void SaeCore::startBatch() {
  const float* logThr = value_[LOG_THRESHOLD].data();
  float* thr = thr_.data();
  for (int j = 0; j < cfg_.dSae; j++) thr[j] = std::exp(logThr[j]);
  std::fill(firedCount_.begin(), firedCount_.end(), 0);
  std::fill(windowCount_.begin(), windowCount_.end(), 0);
  std::fill(windowDot_.begin(), windowDot_.end(), 0.0);
  std::fill(bEncGrad_.begin(), bEncGrad_.end(), 0.0);
  std::fill(gColSum_.begin(), gColSum_.end(), 0.0);
  std::fill(colSq_.begin(), colSq_.end(), 0.0);
}

// x' = x - b_dec, or x itself.
const float* SaeCore::encoderInput(const float* x, int n) {
  if (!cfg_.applyBDecToInput) return x;
  const int dIn = cfg_.dIn;
  const float* bDec = value_[B_DEC].data();
  float* xin = xin_.data();
#pragma omp parallel for schedule(static)
  for (int b = 0; b < n; b++)
    for (int i = 0; i < dIn; i++) xin[size_t(b) * dIn + i] = x[size_t(b) * dIn + i] - bDec[i];
  return xin;
}

// z (without b_enc) = x' W_enc, into z_.
void SaeCore::encode(const float* xin, int n) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, cfg_.dSae, cfg_.dIn, 1.f, xin, cfg_.dIn,
              value_[W_ENC].data(), cfg_.dIn, 0.f, z_.data(), cfg_.dSae);
}

// z += b_enc; f = z * 1{z > thr}; count firings (and, training, the threshold's STE window).
void SaeCore::gateForward(int n, bool training) {
  const int dSae = cfg_.dSae;
  const float* bEnc = value_[B_ENC].data();
  const float* thr = thr_.data();
  const float halfBw = float(cfg_.bandwidth / 2.0);
  float* Z = z_.data();
  float* F = f_.data();
  int32_t* fired = firedCount_.data();
  int32_t* window = windowCount_.data();
  forColumnBlocks(dSae, [&](int lo, int hi) {
    for (int b = 0; b < n; b++) {
      float* __restrict z = Z + size_t(b) * dSae;
      float* __restrict f = F + size_t(b) * dSae;
      for (int j = lo; j < hi; j++) {
        const float zj = z[j] + bEnc[j];
        const bool on = zj > thr[j];
        z[j] = zj;
        f[j] = on ? zj : 0.f;
        fired[j] += on;
      }
      if (training)
        for (int j = lo; j < hi; j++) window[j] += std::fabs(std::max(z[j], 0.f) - thr[j]) < halfBw;
    }
  });
}

// x_hat = f W_dec + b_dec; err = x_hat - x: squared error summed per column into colSq_; training:
// g = err * gradScale into g_ (the gradient of rec w.r.t. x_hat), and its column sums into gColSum_.
void SaeCore::decodeError(const float* x, int n, float gradScale, bool training) {
  const int dIn = cfg_.dIn;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, dIn, cfg_.dSae, 1.f, f_.data(), cfg_.dSae,
              value_[W_DEC].data(), dIn, 0.f, g_.data(), dIn);
  errorPass(x, g_.data(), n, gradScale, training);
}

// G holds f W_dec on entry; err = (G + b_dec) - x, see decodeError.
void SaeCore::errorPass(const float* x, float* G, int n, float gradScale, bool training) {
  const int dIn = cfg_.dIn;
  const float* bDec = value_[B_DEC].data();
  double* colSq = colSq_.data();
  double* gColSum = gColSum_.data();
  forColumnBlocks(dIn, [&](int lo, int hi) {
    for (int b = 0; b < n; b++) {
      float* __restrict g = G + size_t(b) * dIn;
      const float* __restrict xb = x + size_t(b) * dIn;
      for (int i = lo; i < hi; i++) {
        const float e = (g[i] + bDec[i]) - xb[i];
        colSq[i] += double(e) * e;
        if (training) {
          g[i] = e * gradScale;
          gColSum[i] += g[i];
        }
      }
    }
  });
}

// In f_ on entry: df = g W_dec^T. Out: dz = df * 1{z > thr}; accumulates the b_enc gradient
// (column sums of dz) and the threshold's window term sum_b w * df * z (jumprelu.ts logThresholdGrad).
void SaeCore::gateBackward(int n) {
  const int dSae = cfg_.dSae;
  const float* thr = thr_.data();
  const float halfBw = float(cfg_.bandwidth / 2.0);
  const float* Z = z_.data();
  float* DF = f_.data();
  double* windowDot = windowDot_.data();
  double* bEncGrad = bEncGrad_.data();
  forColumnBlocks(dSae, [&](int lo, int hi) {
    for (int b = 0; b < n; b++) {
      const float* __restrict z = Z + size_t(b) * dSae;
      float* __restrict df = DF + size_t(b) * dSae;
      for (int j = lo; j < hi; j++) {
        const float zj = z[j], dfj = df[j];
        const bool inWindow = std::fabs(std::max(zj, 0.f) - thr[j]) < halfBw;
        windowDot[j] += inWindow ? double(dfj * zj) : 0.0;
        const float dz = zj > thr[j] ? dfj : 0.f;
        df[j] = dz;
        bEncGrad[j] += dz;
      }
    }
  });
}

// Summed squared deviation of the batch from its column means (FVU's denominator).
double SaeCore::totalVariance(const float* x, int rows) const {
  const int dIn = cfg_.dIn;
  std::vector<double> colVar(dIn);
  forColumnBlocks(dIn, [&](int lo, int hi) {
    std::vector<double> mean(hi - lo, 0.0);
    for (int b = 0; b < rows; b++)
      for (int i = lo; i < hi; i++) mean[i - lo] += x[size_t(b) * dIn + i];
    for (double& m : mean) m /= rows;
    for (int b = 0; b < rows; b++)
      for (int i = lo; i < hi; i++) {
        const double d = x[size_t(b) * dIn + i] - mean[i - lo];
        colVar[i] += d * d;
      }
  });
  return orderedSum(colVar);
}

// ---------------------------------------------------------------------------------------------
// The step: dense or sparse, then the shared update

StepStats SaeCore::step(const float* x, int rows, double lambda, double lr) {
  useThreads(rows);
  lap(nullptr);
  ensureScratch(rows);
  startBatch();
  const bool trySparse = cfg_.path == PATH_SPARSE || (cfg_.path == PATH_AUTO && lastDensity_ < SPARSE_ENTER);
  if (trySparse && sparseBackward(x, rows)) {
    lastPathSparse_ = true;
    return finish(x, rows, lambda, lr, true);
  }
  startBatch();
  denseBackward(x, rows);
  lastPathSparse_ = false;
  return finish(x, rows, lambda, lr, false);
}

// Forward and backward with the five dense products, chunk by chunk: the weight gradients
// accumulate in Adam's m (the weight groups have beta1 = 0: m is the gradient).
void SaeCore::denseBackward(const float* x, int rows) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae, chunk = chunkRows(rows);
  float* gradWencT = m_[W_ENC].data();
  float* gradWdec = m_[W_DEC].data();
  const float gradScale = float(2.0 / rows);
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int n = std::min(chunk, rows - r0);
    const float* xc = x + size_t(r0) * dIn;
    const float* xin = encoderInput(xc, n);
    encode(xin, n);
    lap("encode");
    gateForward(n, true);
    lap("dense gate");
    decodeError(xc, n, gradScale, true);
    lap("dense decode");
    const float beta = r0 == 0 ? 0.f : 1.f;
    // dW_dec (+)= f^T g; then df = g W_dec^T overwrites f, which is no longer needed.
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dSae, dIn, n, 1.f, f_.data(), dSae, g_.data(), dIn, beta,
                gradWdec, dIn);
    lap("dense dW_dec");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dSae, dIn, 1.f, g_.data(), dIn, value_[W_DEC].data(),
                dIn, 0.f, f_.data(), dSae);
    lap("dense df");
    gateBackward(n);
    lap("dense gate backward");
    // dW_enc^T (+)= dz^T x'
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dSae, dIn, n, 1.f, f_.data(), dSae, xin, dIn, beta,
                gradWencT, dIn);
    lap("dense dW_enc");
  }
}

// Statistics, the small gradients, Adam on every parameter (per feature row: the sparse path
// first forms the row's weight gradients from its entries), sinceFired.
StepStats SaeCore::finish(const float* x, int rows, double lambda, double lr, bool sparse) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  StepStats st;
  st.rec = orderedSum(colSq_) / rows;
  double active = 0, window = 0;
  for (int j = 0; j < dSae; j++) active += firedCount_[j], window += windowCount_[j];
  st.l0 = active / rows;
  st.totalVar = totalVariance(x, rows);
  lastDensity_ = (active + window) / (double(rows) * dSae);

  lap("stats");
  std::vector<float> gThr(dSae);
  biasGradients(lambda, rows, gThr.data());
  lap("bias gradients");
  double t[N_GROUPS];
  for (int g = 0; g < N_GROUPS; g++) t[g] = ++adamSteps[g];
  const AdamScalars enc(ADAM_GROUPS[0], t[0], lr), dec(ADAM_GROUPS[1], t[1], lr), th(ADAM_GROUPS[2], t[2], lr);
  float *Wenc = value_[W_ENC].data(), *mWenc = m_[W_ENC].data(), *vWenc = v_[W_ENC].data();
  float *Wdec = value_[W_DEC].data(), *mWdec = m_[W_DEC].data(), *vWdec = v_[W_DEC].data();
#pragma omp parallel for schedule(dynamic, 32)
  for (int j = 0; j < dSae; j++) {
    const size_t row = size_t(j) * dIn;
    if (sparse) sparseWeightGradients(x, j);
    adam(Wenc + row, mWenc + row, vWenc + row, nullptr, dIn, enc);
    // The decoder gradient loses its component along the (unit) row; the row is renormalised after.
    float* w = Wdec + row;
    float* g = mWdec + row;
    const float along = float(dot(w, g, dIn));
    for (int i = 0; i < dIn; i++) g[i] -= along * w[i];
    adam(w, g, vWdec + row, nullptr, dIn, dec);
    const float norm = float(std::sqrt(dot(w, w, dIn)));
    for (int i = 0; i < dIn; i++) w[i] /= norm;
  }
  adam(value_[B_ENC].data(), m_[B_ENC].data(), v_[B_ENC].data(), nullptr, dSae, enc);
  adam(value_[B_DEC].data(), m_[B_DEC].data(), v_[B_DEC].data(), nullptr, dIn, dec);
  adam(value_[LOG_THRESHOLD].data(), m_[LOG_THRESHOLD].data(), v_[LOG_THRESHOLD].data(), gThr.data(), dSae, th);
  lap(sparse ? "sparse weight gradients + adam rows" : "adam rows");
  float* sf = sinceFired_.data();
  for (int j = 0; j < dSae; j++) sf[j] = firedCount_[j] > 0 ? 0.f : sf[j] + float(rows);
  lap("adam tail");
  return st;
}

// The small gradients from the step's accumulators, with the weights of before the update:
// b_enc: column sums of dz (into m: beta1 = 0); b_dec: column sums of g, minus (encoder path)
// W_enc colsum(dz); log_threshold: d thr = -1/bw [sum_b w df z + lambda/B sum_b w], times thr.
void SaeCore::biasGradients(double lambda, int rows, float* gThr) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  float* gBenc = m_[B_ENC].data();
  for (int j = 0; j < dSae; j++) gBenc[j] = float(bEncGrad_[j]);
  float* gBdec = m_[B_DEC].data();
  const float* WencT = value_[W_ENC].data();
  forColumnBlocks(dIn, [&](int lo, int hi) {
    std::vector<double> acc(hi - lo, 0.0);
    if (cfg_.applyBDecToInput)
      for (int j = 0; j < dSae; j++) {
        const double bj = bEncGrad_[j];
        if (bj == 0) continue;
        const float* w = WencT + size_t(j) * dIn;
        for (int i = lo; i < hi; i++) acc[i - lo] += w[i] * bj;
      }
    for (int i = lo; i < hi; i++) gBdec[i] = float(gColSum_[i] - acc[i - lo]);
  });
  for (int j = 0; j < dSae; j++)
    gThr[j] = float(-1.0 / cfg_.bandwidth * (windowDot_[j] + lambda / rows * windowCount_[j]) * thr_.data()[j]);
}

// ---------------------------------------------------------------------------------------------
// The sparse path
//
// After warm-up few features fire, and the dense products f W_dec, f^T g, g W_dec^T and dz^T x'
// spend nearly all their time on zeros. The sparse path keeps only the entries (row, z) where a
// feature fires or sits in the threshold's STE window, grouped by feature (rows ascending), and
// computes x_hat, df and both weight gradients from them; each feature's weight gradients are
// formed in its Adam m rows right before that row's update (finish), so the state is walked
// once. Only the encoder product x' W_enc stays dense. Every sum runs in a fixed order
// (features ascending, rows ascending), whatever the thread count.

// Forward and backward (all but the weight gradients) from the entries. False, with nothing
// changed, when more entries than the path pays for turn up (the dense path then runs).
bool SaeCore::sparseBackward(const float* x, int rows) {
  if (!collectEntries(x, rows)) return false;
  lap("sparse collect");
  decodeFromEntries(rows);
  lap("sparse decode");
  errorPass(x, gFull_.data(), rows, float(2.0 / rows), true);
  lap("sparse error");
  entryGradients();
  lap("sparse df");
  return true;
}

size_t SaeCore::sparseCapacity(int rows) const {
  if (cfg_.path == PATH_SPARSE) return SIZE_MAX;
  const double byDensity = SPARSE_BAIL * rows * double(cfg_.dSae);
  return size_t(std::max(1024.0, std::min(byDensity, double(SPARSE_ENTRY_BYTES_MAX) / SPARSE_ENTRY_BYTES)));
}

// The encoder product chunk by chunk; keeps the entries that fire or are in the STE window,
// then groups them by feature (counting sort, rows stay ascending).
bool SaeCore::collectEntries(const float* x, int rows) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae, chunk = chunkRows(rows);
  const size_t cap = sparseCapacity(rows);
  const float* bEnc = value_[B_ENC].data();
  const float* thr = thr_.data();
  const float halfBw = float(cfg_.bandwidth / 2.0);
  if (int(threadEntries_.size()) < cfg_.threads) threadEntries_.resize(cfg_.threads);
  for (auto& v : threadEntries_) v.clear();
  segments_.clear();
  size_t total = 0;
  bool overflow = false;
  std::vector<size_t> begin(cfg_.threads), end(cfg_.threads);
  int teamSize = 1;
  for (int r0 = 0; r0 < rows && !overflow; r0 += chunk) {
    const int n = std::min(chunk, rows - r0);
    encode(encoderInput(x + size_t(r0) * dIn, n), n);
    lap("encode");
    const float* Z = z_.data();
    const size_t perThreadCap = cap == SIZE_MAX ? SIZE_MAX - 1 : (cap - total) / cfg_.threads + 1;
#pragma omp parallel
    {
      const int t = omp_get_thread_num(), T = omp_get_num_threads();
#pragma omp single
      teamSize = T;
      const int lo = int(int64_t(n) * t / T), hi = int(int64_t(n) * (t + 1) / T);
      std::vector<Entry>& out = threadEntries_[t];
      begin[t] = out.size();
      for (int b = lo; b < hi && out.size() - begin[t] <= perThreadCap; b++) {
        const float* z = Z + size_t(b) * dSae;
        for (int j = 0; j < dSae; j++) {
          const float zj = z[j] + bEnc[j];
          if (zj > thr[j] || std::fabs(std::max(zj, 0.f) - thr[j]) < halfBw) out.push_back({r0 + b, j, zj});
        }
      }
      end[t] = out.size();
    }
    for (int t = 0; t < teamSize; t++) {
      segments_.push_back({t, begin[t], end[t]});
      total += end[t] - begin[t];
      overflow |= end[t] - begin[t] > perThreadCap;
    }
    overflow |= total > cap;
  }
  if (overflow) {
    for (auto& v : threadEntries_) std::vector<Entry>().swap(v);  // give the memory back
    return false;
  }
  colStart_.assign(dSae + 1, 0);
  for (const Segment& s : segments_)
    for (size_t k = s.begin; k < s.end; k++) colStart_[threadEntries_[s.thread][k].col + 1]++;
  for (int j = 0; j < dSae; j++) colStart_[j + 1] += colStart_[j];
  entryRow_.resize(total);
  entryZ_.resize(total);
  entryDf_.resize(total);
  std::vector<size_t> cursor(colStart_.begin(), colStart_.end() - 1);
  for (const Segment& s : segments_)
    for (size_t k = s.begin; k < s.end; k++) {
      const Entry& e = threadEntries_[s.thread][k];
      const size_t at = cursor[e.col]++;
      entryRow_[at] = e.row;
      entryZ_[at] = e.z;
    }
  return true;
}

// x_hat - b_dec = f W_dec into gFull_, feature by feature; each thread owns a slice of d_in.
void SaeCore::decodeFromEntries(int rows) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  if (gFull_.size() < size_t(rows) * dIn) gFull_ = FloatBuffer(), gFull_ = FloatBuffer(size_t(rows) * dIn);
  float* G = gFull_.data();
  const float* Wdec = value_[W_DEC].data();
  const float* thr = thr_.data();
  forColumnBlocks(dIn, [&](int lo, int hi) {
    for (int b = 0; b < rows; b++) std::fill(G + size_t(b) * dIn + lo, G + size_t(b) * dIn + hi, 0.f);
    for (int j = 0; j < dSae; j++) {
      const float* __restrict w = Wdec + size_t(j) * dIn;
      for (size_t k = colStart_[j]; k < colStart_[j + 1]; k++) {
        const float z = entryZ_[k];
        if (!(z > thr[j])) continue;
        float* __restrict g = G + size_t(entryRow_[k]) * dIn;
#pragma omp simd
        for (int i = lo; i < hi; i++) g[i] += z * w[i];
      }
    }
  });
}

// df = g . W_dec[j] at every entry; firing and window counts, the window term of the threshold
// gradient and the b_enc gradient (sum of dz), per feature.
void SaeCore::entryGradients() {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  const float* G = gFull_.data();
  const float* Wdec = value_[W_DEC].data();
  const float* thr = thr_.data();
  const float halfBw = float(cfg_.bandwidth / 2.0);
#pragma omp parallel for schedule(dynamic, 32)
  for (int j = 0; j < dSae; j++) {
    const float* w = Wdec + size_t(j) * dIn;
    int32_t fired = 0, window = 0;
    double windowDot = 0, bEnc = 0;
    for (size_t k = colStart_[j]; k < colStart_[j + 1]; k++) {
      const float z = entryZ_[k];
      const float df = dotf(G + size_t(entryRow_[k]) * dIn, w, dIn);
      entryDf_[k] = df;
      const bool on = z > thr[j], inWindow = std::fabs(std::max(z, 0.f) - thr[j]) < halfBw;
      fired += on;
      window += inWindow;
      windowDot += inWindow ? double(df * z) : 0.0;
      bEnc += on ? df : 0.f;
    }
    firedCount_[j] = fired;
    windowCount_[j] = window;
    windowDot_[j] = windowDot;
    bEncGrad_[j] = bEnc;
  }
}

// Feature j's weight gradients into its Adam m rows: dW_dec[j] = sum f g[row],
// dW_enc^T[j] = sum dz x'[row], over the entries where it fired.
void SaeCore::sparseWeightGradients(const float* x, int j) {
  const int dIn = cfg_.dIn;
  float* __restrict gDec = m_[W_DEC].data() + size_t(j) * dIn;
  float* __restrict gEnc = m_[W_ENC].data() + size_t(j) * dIn;
  std::fill(gDec, gDec + dIn, 0.f);
  std::fill(gEnc, gEnc + dIn, 0.f);
  const float* bDec = value_[B_DEC].data();
  const float thr = thr_.data()[j];
  for (size_t k = colStart_[j]; k < colStart_[j + 1]; k++) {
    const float z = entryZ_[k];
    if (!(z > thr)) continue;
    const float dz = entryDf_[k];
    const float* __restrict g = gFull_.data() + size_t(entryRow_[k]) * dIn;
    const float* __restrict xr = x + size_t(entryRow_[k]) * dIn;
#pragma omp simd
    for (int i = 0; i < dIn; i++) gDec[i] += z * g[i];
    if (cfg_.applyBDecToInput) {
#pragma omp simd
      for (int i = 0; i < dIn; i++) gEnc[i] += dz * (xr[i] - bDec[i]);
    } else {
#pragma omp simd
      for (int i = 0; i < dIn; i++) gEnc[i] += dz * xr[i];
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

EvalStats SaeCore::evaluate(const float* x, int rows, float* fired) {
  useThreads(rows);
  ensureScratch(rows);
  startBatch();
  const int dIn = cfg_.dIn, chunk = chunkRows(rows);
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int n = std::min(chunk, rows - r0);
    const float* xc = x + size_t(r0) * dIn;
    encode(encoderInput(xc, n), n);
    gateForward(n, false);
    decodeError(xc, n, 0.f, false);
  }
  double active = 0;
  for (int j = 0; j < cfg_.dSae; j++) {
    fired[j] = float(firedCount_[j]);
    active += firedCount_[j];
  }
  return {orderedSum(colSq_), active};
}

}  // namespace sae
