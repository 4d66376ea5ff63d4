#include "sae_core.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace sae {

const char* const PARAM_NAMES[N_PARAMS] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"};
const AdamGroup ADAM_GROUPS[N_GROUPS] = {{0.0, 0.999, 1}, {0.0, 0.999, 1}, {0.99, 0.999, 2}};

// ---------------------------------------------------------------------------------------------
// Buffers and parallel helpers

FloatBuffer::FloatBuffer(size_t n) : n_(n) {
  if (n == 0) return;
  const size_t bytes = ((n * sizeof(float) + 63) / 64) * 64;
  p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
  if (!p_) throw std::bad_alloc();
  std::memset(p_, 0, bytes);
}
FloatBuffer::~FloatBuffer() { std::free(p_); }
FloatBuffer::FloatBuffer(FloatBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr, o.n_ = 0; }
FloatBuffer& FloatBuffer::operator=(FloatBuffer&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(n_, o.n_);
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

// The scalars of one Adam update of one group at step t (PyTorch's rule, jumprelu.ts adamStep).
struct AdamScalars {
  float beta1, oneMinusBeta1, beta2, oneMinusBeta2, stepSize, sqrtBc2, eps;
  AdamScalars(const AdamGroup& g, double t, double lr)
      : beta1(float(g.beta1)),
        oneMinusBeta1(float(1 - g.beta1)),
        beta2(float(g.beta2)),
        oneMinusBeta2(float(1 - g.beta2)),
        stepSize(float(lr * g.lrScale / (1 - std::pow(g.beta1, t)))),
        sqrtBc2(float(std::sqrt(1 - std::pow(g.beta2, t)))),
        eps(float(ADAM_EPS)) {}
};

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
  for (int i = 0; i < n; i++) s += double(a[i]) * b[i];
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
  useThreads();
  float* dst = slots(which, value_, m_, v_)[p].data();
  if (p == W_ENC) transpose(src, dst, cfg_.dIn, cfg_.dSae);
  else std::memcpy(dst, src, paramSize(p) * sizeof(float));
}

void SaeCore::getArray(int which, Param p, float* dst) const {
  useThreads();
  const float* src = slots(which, const_cast<FloatBuffer*>(value_), const_cast<FloatBuffer*>(m_),
                           const_cast<FloatBuffer*>(v_))[p].data();
  if (p == W_ENC) transpose(src, dst, cfg_.dSae, cfg_.dIn);
  else std::memcpy(dst, src, paramSize(p) * sizeof(float));
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
  return 4 * (stateFloats(dIn, dSae) + chunk * (2 * size_t(dSae) + 2 * size_t(dIn))) + accumulatorBytes(dIn, dSae);
}

size_t SaeCore::bytes() const {
  const size_t scratch = xin_.size() + z_.size() + f_.size() + g_.size();
  return 4 * (stateFloats(cfg_.dIn, cfg_.dSae) + scratch) + accumulatorBytes(cfg_.dIn, cfg_.dSae);
}

void SaeCore::useThreads() const {
  openblas_set_num_threads(cfg_.threads);
  omp_set_num_threads(cfg_.threads);
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
  const float* bDec = value_[B_DEC].data();
  float* G = g_.data();
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
// The step

StepStats SaeCore::step(const float* x, int rows, double lambda, double lr) {
  useThreads();
  ensureScratch(rows);
  startBatch();
  const int dIn = cfg_.dIn, dSae = cfg_.dSae, chunk = chunkRows(rows);
  // The weight groups have beta1 = 0: their first moment is the gradient, accumulated in place.
  float* gradWencT = m_[W_ENC].data();
  float* gradWdec = m_[W_DEC].data();
  const float gradScale = float(2.0 / rows);
  for (int r0 = 0; r0 < rows; r0 += chunk) {
    const int n = std::min(chunk, rows - r0);
    const float* xc = x + size_t(r0) * dIn;
    const float* xin = encoderInput(xc, n);
    encode(xin, n);
    gateForward(n, true);
    decodeError(xc, n, gradScale, true);
    const float beta = r0 == 0 ? 0.f : 1.f;
    // dW_dec (+)= f^T g; then df = g W_dec^T overwrites f, which is no longer needed.
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dSae, dIn, n, 1.f, f_.data(), dSae, g_.data(), dIn, beta,
                gradWdec, dIn);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, dSae, dIn, 1.f, g_.data(), dIn, value_[W_DEC].data(),
                dIn, 0.f, f_.data(), dSae);
    gateBackward(n);
    // dW_enc^T (+)= dz^T x'
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dSae, dIn, n, 1.f, f_.data(), dSae, xin, dIn, beta,
                gradWencT, dIn);
  }
  StepStats st;
  st.rec = orderedSum(colSq_) / rows;
  double active = 0;
  for (int j = 0; j < dSae; j++) active += firedCount_[j];
  st.l0 = active / rows;
  st.totalVar = totalVariance(x, rows);
  adamUpdate(lambda, lr, rows);
  float* sf = sinceFired_.data();
  for (int j = 0; j < dSae; j++) sf[j] = firedCount_[j] > 0 ? 0.f : sf[j] + float(rows);
  return st;
}

// The small gradients (b_enc, b_dec, log_threshold) from the step's accumulators, then Adam on
// every parameter; the decoder gradient is projected orthogonal to its (unit) row first, and the
// row renormalised after its update.
void SaeCore::adamUpdate(double lambda, double lr, int rows) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  // b_enc: column sums of dz. b_dec: column sums of g, minus (encoder path) W_enc colsum(dz),
  // with the W_enc of before the update.
  float* gBenc = m_[B_ENC].data();  // beta1 = 0: the gradient goes straight into m
  for (int j = 0; j < dSae; j++) gBenc[j] = float(bEncGrad_[j]);
  float* gBdec = m_[B_DEC].data();
  const float* WencT = value_[W_ENC].data();
  forColumnBlocks(dIn, [&](int lo, int hi) {
    std::vector<double> acc(hi - lo, 0.0);
    if (cfg_.applyBDecToInput)
      for (int j = 0; j < dSae; j++) {
        const double bj = bEncGrad_[j];
        const float* w = WencT + size_t(j) * dIn;
        for (int i = lo; i < hi; i++) acc[i - lo] += w[i] * bj;
      }
    for (int i = lo; i < hi; i++) gBdec[i] = float(gColSum_[i] - acc[i - lo]);
  });
  // log_threshold: d thr = -1/bw [sum_b w df z + lambda/B sum_b w]; d log_thr = d thr * thr.
  std::vector<float> gThr(dSae);
  for (int j = 0; j < dSae; j++)
    gThr[j] = float(-1.0 / cfg_.bandwidth * (windowDot_[j] + lambda / rows * windowCount_[j]) * thr_.data()[j]);

  double t[N_GROUPS];
  for (int g = 0; g < N_GROUPS; g++) t[g] = ++adamSteps[g];
  const AdamScalars enc(ADAM_GROUPS[0], t[0], lr), dec(ADAM_GROUPS[1], t[1], lr), th(ADAM_GROUPS[2], t[2], lr);
  float *Wenc = value_[W_ENC].data(), *mWenc = m_[W_ENC].data(), *vWenc = v_[W_ENC].data();
  float *Wdec = value_[W_DEC].data(), *mWdec = m_[W_DEC].data(), *vWdec = v_[W_DEC].data();
#pragma omp parallel for schedule(static)
  for (int j = 0; j < dSae; j++) {
    const size_t row = size_t(j) * dIn;
    adam(Wenc + row, mWenc + row, vWenc + row, nullptr, dIn, enc);
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
}

// ---------------------------------------------------------------------------------------------
// Evaluation

EvalStats SaeCore::evaluate(const float* x, int rows, float* fired) {
  useThreads();
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
