// The kernels and the step of sae_cuda.h. Compiled by nvcc for the device, and by g++ as host
// C++ for the emulation build (device.h): every kernel here follows device.h's rule (a thread
// never waits for another), so both builds run the same arithmetic.
#include <math.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <new>
#include <vector>

#include "device.h"
#include "sae_cuda.h"

namespace sae_cuda {

// ---------------------------------------------------------------------------------------------
// Device arrays

template <class T>
static T* allocate(size_t n);
template <>
float* allocate<float>(size_t n) { return allocFloats(n); }
template <>
double* allocate<double>(size_t n) { return allocDoubles(n); }
template <>
int* allocate<int>(size_t n) { return allocInts(n); }

template <class T>
DeviceArray<T>::DeviceArray(size_t n) : p_(n ? allocate<T>(n) : nullptr), n_(n) {}
template <class T>
DeviceArray<T>::~DeviceArray() {
  freeDevice(p_);
}
template <class T>
DeviceArray<T>& DeviceArray<T>::operator=(DeviceArray&& o) noexcept {
  std::swap(p_, o.p_);
  std::swap(n_, o.n_);
  return *this;
}
template class DeviceArray<float>;
template class DeviceArray<double>;
template class DeviceArray<int>;

// ---------------------------------------------------------------------------------------------
// Kernels. One thread per element, per column (a reduction over the batch's rows, in row
// order: coalesced, as neighbouring threads read neighbouring columns) or per feature row.

constexpr int THREADS = 256;
static unsigned blocksFor(size_t n) { return unsigned((n + THREADS - 1) / THREADS); }

__device__ inline size_t threadIndex() { return size_t(blockIdx.x) * blockDim.x + threadIdx.x; }

// out = x - b_dec, row by row.
__global__ void subtractBias(float* __restrict__ out, const float* __restrict__ x, const float* __restrict__ bDec,
                             size_t n, int dIn) {
  const size_t k = threadIndex();
  if (k < n) out[k] = x[k] - bDec[k % dIn];
}

// The column reductions over the batch's rows run in two kernels, so that a [B, 2048] batch
// still spreads over many threads: the first gives each (segment of rows, column) pair one
// thread and writes that segment's partial sums to [segments, cols]; the second adds each
// column's partials in segment order. Deterministic for a given shape, like every sum here.

// The (segment, column) pair thread `e` of a first kernel reduces: rows [r0, r1) of column `col`,
// its partial sums going to part[e] ([segments, cols] in row-major order).
struct SegmentCell {
  size_t col;
  int r0, r1;
};

// The pair of thread `e`; false for the threads past the last pair (they do nothing).
__device__ inline bool segmentCell(size_t e, int cols, int segments, int rows, SegmentCell& c) {
  if (e >= size_t(segments) * cols) return false;
  const int seg = int(e / cols);
  c.col = e % cols;
  c.r0 = int(int64_t(rows) * seg / segments);
  c.r1 = int(int64_t(rows) * (seg + 1) / segments);
  return true;
}

// The second kernel's sum for column c: part[seg, c] over the segments, in segment order.
template <class T>
__device__ inline T sumOverSegments(const T* __restrict__ part, size_t c, int cols, int segments) {
  T total = 0;
  for (int seg = 0; seg < segments; seg++) total += part[size_t(seg) * cols + c];
  return total;
}

// Per (segment, feature j): z += b_enc; f = z * 1{z > thr}; the segment's firings and entries in
// the threshold's STE window.
__global__ void gateForward(float* __restrict__ Z, float* __restrict__ F, const float* __restrict__ bEnc,
                            const float* __restrict__ logThr, int* __restrict__ firedPart,
                            int* __restrict__ windowPart, int rows, int dSae, int segments, float halfBw) {
  const size_t e = threadIndex();
  SegmentCell c;
  if (!segmentCell(e, dSae, segments, rows, c)) return;
  const size_t j = c.col;
  const float thr = expf(logThr[j]), b = bEnc[j];
  int on = 0, inWindow = 0;
  for (int r = c.r0; r < c.r1; r++) {
    const size_t k = size_t(r) * dSae + j;
    const float z = Z[k] + b;
    Z[k] = z;
    F[k] = z > thr ? z : 0.f;
    on += z > thr;
    inWindow += fabsf(fmaxf(z, 0.f) - thr) < halfBw;
  }
  firedPart[e] = on;
  windowPart[e] = inWindow;
}

// Per feature j: firings and window entries over the batch; thr = exp(log_threshold).
__global__ void countFirings(const int* __restrict__ firedPart, const int* __restrict__ windowPart,
                             const float* __restrict__ logThr, float* __restrict__ thr, int* __restrict__ fired,
                             int* __restrict__ window, int dSae, int segments) {
  const size_t j = threadIndex();
  if (j >= size_t(dSae)) return;
  thr[j] = expf(logThr[j]);
  fired[j] = sumOverSegments(firedPart, j, dSae, segments);
  window[j] = sumOverSegments(windowPart, j, dSae, segments);
}

// Per (segment, input column i), on G = f W_dec: err = (G + b_dec) - x; the squared error;
// training: G = err * gradScale (the gradient of rec w.r.t. x_hat) and its sum.
__global__ void errorColumns(float* __restrict__ G, const float* __restrict__ x, const float* __restrict__ bDec,
                             double* __restrict__ sqPart, double* __restrict__ gPart, int rows, int dIn,
                             int segments, float gradScale, bool training) {
  const size_t e = threadIndex();
  SegmentCell c;
  if (!segmentCell(e, dIn, segments, rows, c)) return;
  const size_t i = c.col;
  double sq = 0, gs = 0;
  for (int r = c.r0; r < c.r1; r++) {
    const size_t k = size_t(r) * dIn + i;
    const float err = (G[k] + bDec[i]) - x[k];
    sq += double(err) * err;
    if (training) {
      G[k] = err * gradScale;
      gs += G[k];
    }
  }
  sqPart[e] = sq;
  gPart[e] = gs;
}

// Per (segment, feature j), with df = g W_dec^T in DF: dz = df * 1{z > thr} replaces df; the
// segment's sum of dz (the b_enc gradient) and window term sum w df z.
__global__ void gateBackward(float* __restrict__ DF, const float* __restrict__ Z, const float* __restrict__ thr,
                             double* __restrict__ windowDotPart, double* __restrict__ bEncPart, int rows, int dSae,
                             int segments, float halfBw) {
  const size_t e = threadIndex();
  SegmentCell c;
  if (!segmentCell(e, dSae, segments, rows, c)) return;
  const size_t j = c.col;
  const float t = thr[j];
  double windowDot = 0, bEnc = 0;
  for (int r = c.r0; r < c.r1; r++) {
    const size_t k = size_t(r) * dSae + j;
    const float z = Z[k], df = DF[k];
    windowDot += fabsf(fmaxf(z, 0.f) - t) < halfBw ? double(df * z) : 0.0;
    const float dz = z > t ? df : 0.f;
    DF[k] = dz;
    bEnc += dz;
  }
  windowDotPart[e] = windowDot;
  bEncPart[e] = bEnc;
}

// Per column c: out[c] = sum over segments of part[seg, c], in segment order (two arrays at once).
__global__ void sumSegments(const double* __restrict__ partA, double* __restrict__ outA,
                            const double* __restrict__ partB, double* __restrict__ outB, int cols, int segments) {
  const size_t c = threadIndex();
  if (c >= size_t(cols)) return;
  outA[c] = sumOverSegments(partA, c, cols, segments);
  outB[c] = sumOverSegments(partB, c, cols, segments);
}

// Per feature j, from the summed window term and dz: the b_enc gradient (into Adam's m, beta1 = 0,
// and a float copy for the b_dec term) and the threshold gradient
// d thr = -1/bw [sum_b w df z + lambda/B sum_b w], times thr (jumprelu.ts logThresholdGrad).
__global__ void thresholdGradients(const double* __restrict__ windowDot, const double* __restrict__ bEnc,
                                   const int* __restrict__ window, const float* __restrict__ thr,
                                   float* __restrict__ gBenc, float* __restrict__ bEncGradF, float* __restrict__ gThr,
                                   int dSae, float bandwidth, double lambdaPerRow) {
  const size_t j = threadIndex();
  if (j >= size_t(dSae)) return;
  gBenc[j] = float(bEnc[j]);
  bEncGradF[j] = float(bEnc[j]);
  gThr[j] = float(-1.0 / bandwidth * (windowDot[j] + lambdaPerRow * window[j]) * thr[j]);
}

// b_dec gradient: column sums of g, minus (encoder path) W_enc colsum(dz), which is in wDz.
__global__ void bDecGradient(float* __restrict__ gBdec, const double* __restrict__ gColSum,
                             const float* __restrict__ wDz, int dIn, bool encoderPath) {
  const size_t i = threadIndex();
  if (i < size_t(dIn)) gBdec[i] = float(gColSum[i] - (encoderPath ? double(wDz[i]) : 0.0));
}

// Per (segment, input column i): the segment's sum and sum of squares of x.
__global__ void momentColumns(const float* __restrict__ x, double* __restrict__ sumPart, double* __restrict__ sqPart,
                              int rows, int dIn, int segments) {
  const size_t e = threadIndex();
  SegmentCell c;
  if (!segmentCell(e, dIn, segments, rows, c)) return;
  const size_t i = c.col;
  double sum = 0, sq = 0;
  for (int r = c.r0; r < c.r1; r++) {
    const double v = x[size_t(r) * dIn + i];
    sum += v;
    sq += v * v;
  }
  sumPart[e] = sum;
  sqPart[e] = sq;
}

// Per input column i: the summed squared deviation from the column mean (FVU's denominator), from
// the column's sum and sum of squares: in double the cancellation costs nothing measurable unless
// a column's mean exceeds its standard deviation by orders of magnitude.
__global__ void varianceColumns(const double* __restrict__ sum, const double* __restrict__ sq,
                                double* __restrict__ colVar, int rows, int dIn) {
  const size_t i = threadIndex();
  if (i < size_t(dIn)) colVar[i] = sq[i] - sum[i] * sum[i] / rows;
}

// Adam on n values. grad == nullptr: beta1 = 0 and m already holds the gradient.
__global__ void adam(float* __restrict__ p, float* __restrict__ m, float* __restrict__ v,
                     const float* __restrict__ grad, size_t n, AdamScalars a) {
  const size_t k = threadIndex();
  if (k >= n) return;
  float step;
  if (grad) {
    m[k] = m[k] * a.beta1 + grad[k] * a.oneMinusBeta1;
    v[k] = v[k] * a.beta2 + grad[k] * grad[k] * a.oneMinusBeta2;
    step = m[k];
  } else {
    step = m[k];
    v[k] = v[k] * a.beta2 + step * step * a.oneMinusBeta2;
  }
  p[k] = p[k] - step / (sqrtf(v[k]) / a.sqrtBc2 + a.eps) * a.stepSize;
}

// Per decoder row j: the gradient loses its component along the (unit) row.
__global__ void projectRows(const float* __restrict__ W, float* __restrict__ G, int dSae, int dIn) {
  const size_t j = threadIndex();
  if (j >= size_t(dSae)) return;
  const float* w = W + j * dIn;
  float* g = G + j * dIn;
  double along = 0;
  for (int i = 0; i < dIn; i++) along += double(w[i]) * g[i];
  const float a = float(along);
  for (int i = 0; i < dIn; i++) g[i] -= a * w[i];
}

// Per decoder row j: back to unit norm.
__global__ void renormaliseRows(float* __restrict__ W, int dSae, int dIn) {
  const size_t j = threadIndex();
  if (j >= size_t(dSae)) return;
  float* w = W + j * dIn;
  double sq = 0;
  for (int i = 0; i < dIn; i++) sq += double(w[i]) * w[i];
  const float norm = float(sqrt(sq));
  for (int i = 0; i < dIn; i++) w[i] /= norm;
}

__global__ void updateSinceFired(float* __restrict__ since, const int* __restrict__ fired, int dSae, float rows) {
  const size_t j = threadIndex();
  if (j < size_t(dSae)) since[j] = fired[j] > 0 ? 0.f : since[j] + rows;
}

// ---------------------------------------------------------------------------------------------
// State

SaeCuda::SaeCuda(const Config& cfg) : cfg_(cfg) {
  for (int p = 0; p < N_PARAMS; p++) {
    value_[p] = DeviceArray<float>(paramSize(Param(p)));
    m_[p] = DeviceArray<float>(paramSize(Param(p)));
    v_[p] = DeviceArray<float>(paramSize(Param(p)));
  }
  sinceFired_ = DeviceArray<float>(cfg.dSae);
  thr_ = DeviceArray<float>(cfg.dSae);
  bEncGradF_ = DeviceArray<float>(cfg.dSae);
  dSaeScratch_ = DeviceArray<float>(cfg.dSae);
  dInScratch_ = DeviceArray<float>(cfg.dIn);
  fired_ = DeviceArray<int>(cfg.dSae);
  window_ = DeviceArray<int>(cfg.dSae);
  windowDot_ = DeviceArray<double>(cfg.dSae);
  bEncSum_ = DeviceArray<double>(cfg.dSae);
  colSq_ = DeviceArray<double>(cfg.dIn);
  gColSum_ = DeviceArray<double>(cfg.dIn);
  colSum_ = DeviceArray<double>(cfg.dIn);
  colSqX_ = DeviceArray<double>(cfg.dIn);
  colVar_ = DeviceArray<double>(cfg.dIn);
}

size_t SaeCuda::paramSize(Param p) const {
  switch (p) {
    case W_ENC: case W_DEC: return size_t(cfg_.dIn) * cfg_.dSae;
    case B_ENC: case LOG_THRESHOLD: return cfg_.dSae;
    default: return cfg_.dIn;
  }
}

DeviceArray<float>* SaeCuda::slots(int which) const {
  auto* self = const_cast<SaeCuda*>(this);
  return which == 0 ? self->value_ : which == 1 ? self->m_ : self->v_;
}

void SaeCuda::setArray(int which, Param p, const float* host) {
  toDevice(slots(which)[p].data(), host, paramSize(p) * sizeof(float));
}
void SaeCuda::getArray(int which, Param p, float* host) const {
  toHost(host, slots(which)[p].data(), paramSize(p) * sizeof(float));
}
void SaeCuda::zeroArray(int which, Param p) { zeroDevice(slots(which)[p].data(), paramSize(p) * sizeof(float)); }
void SaeCuda::setSinceFired(const float* host) { toDevice(sinceFired_.data(), host, cfg_.dSae * sizeof(float)); }
void SaeCuda::getSinceFired(float* host) const { toHost(host, sinceFired_.data(), cfg_.dSae * sizeof(float)); }

static size_t stateFloats(int dIn, int dSae) {
  const size_t params = 2 * size_t(dIn) * dSae + 2 * size_t(dSae) + dIn;
  return 3 * params + 4 * size_t(dSae) + size_t(dIn);  // values, m, v; sinceFired, thr, two scratch rows
}
static size_t counterBytes(int dIn, int dSae) { return size_t(dSae) * (2 * 4 + 2 * 8) + size_t(dIn) * 5 * 8; }
static size_t batchFloats(int dIn, int dSae, int rows) { return size_t(rows) * (3 * size_t(dIn) + 2 * size_t(dSae)); }

size_t SaeCuda::estimateBytes(int dIn, int dSae, int rows) {
  const size_t featureParts = size_t(segmentsFor(dSae, rows)) * dSae;
  const size_t partials = 2 * 8 * std::max(featureParts, size_t(segmentsFor(dIn, rows)) * dIn) + 2 * 4 * featureParts;
  return 4 * (stateFloats(dIn, dSae) + batchFloats(dIn, dSae, rows)) + counterBytes(dIn, dSae) + partials;
}

size_t SaeCuda::bytes() const {
  const size_t scratch = x_.size() + xin_.size() + z_.size() + f_.size() + g_.size();
  const size_t partials = 8 * (partA_.size() + partB_.size()) + 4 * (intPartA_.size() + intPartB_.size());
  return 4 * (stateFloats(cfg_.dIn, cfg_.dSae) + scratch) + counterBytes(cfg_.dIn, cfg_.dSae) + partials;
}

void SaeCuda::ensureScratch(int rows) {
  if (rows <= rowsCap_) return;
  // Free first: the old and new scratch never coexist.
  x_ = DeviceArray<float>(), xin_ = DeviceArray<float>(), z_ = DeviceArray<float>(), f_ = DeviceArray<float>();
  g_ = DeviceArray<float>(), partA_ = DeviceArray<double>(), partB_ = DeviceArray<double>();
  intPartA_ = DeviceArray<int>(), intPartB_ = DeviceArray<int>();
  rowsCap_ = 0;
  x_ = DeviceArray<float>(size_t(rows) * cfg_.dIn);
  if (cfg_.applyBDecToInput) xin_ = DeviceArray<float>(size_t(rows) * cfg_.dIn);
  z_ = DeviceArray<float>(size_t(rows) * cfg_.dSae);
  f_ = DeviceArray<float>(size_t(rows) * cfg_.dSae);
  g_ = DeviceArray<float>(size_t(rows) * cfg_.dIn);
  const size_t partials = std::max(size_t(segmentsFor(cfg_.dSae, rows)) * cfg_.dSae, size_t(segmentsFor(cfg_.dIn, rows)) * cfg_.dIn);
  partA_ = DeviceArray<double>(partials);
  partB_ = DeviceArray<double>(partials);
  intPartA_ = DeviceArray<int>(size_t(segmentsFor(cfg_.dSae, rows)) * cfg_.dSae);
  intPartB_ = DeviceArray<int>(size_t(segmentsFor(cfg_.dSae, rows)) * cfg_.dSae);
  rowsCap_ = rows;
}

// Row segments of a column reduction: enough (segment, column) threads to fill a large GPU.
int SaeCuda::segmentsFor(int cols, int rows) {
  constexpr long TARGET_THREADS = 1L << 18;
  return int(std::max(1L, std::min<long>(rows, (TARGET_THREADS + cols - 1) / cols)));
}

double SaeCuda::deadFraction(double windowSamples) const {
  std::vector<float> since(cfg_.dSae);
  getSinceFired(since.data());
  const float w = float(windowSamples);
  long dead = 0;
  for (float s : since) dead += s >= w;
  return double(dead) / cfg_.dSae;
}

// Charges the time since the previous lap to `phase` (nullptr: starts the clock), when profiling.
void SaeCuda::lap(const char* phase) {
  if (!cfg_.profile) return;
  synchronize();
  const auto now = std::chrono::steady_clock::now();
  if (phase) profile_[phase] += std::chrono::duration<double>(now - lapStart_).count();
  lapStart_ = now;
}

// Sums on the host, in index order: the few [d_in] / [d_sae] per-column results of a step.
double SaeCuda::sumDoubles(const DeviceArray<double>& a) const {
  std::vector<double> h(a.size());
  toHost(h.data(), a.data(), a.size() * sizeof(double));
  double s = 0;
  for (double v : h) s += v;
  return s;
}
double SaeCuda::sumInts(const DeviceArray<int>& a) const {
  std::vector<int> h(a.size());
  toHost(h.data(), a.data(), a.size() * sizeof(int));
  double s = 0;
  for (int v : h) s += v;
  return s;
}

// ---------------------------------------------------------------------------------------------
// The step

// Copies the batch in; z = x' W_enc + b_enc, f, the firing counts; x_hat and the error columns
// (training: g = 2 err / B in g_). Returns x' (the encoder's input).
const float* SaeCuda::forward(const float* x, int rows, bool training) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  ensureScratch(rows);
  blasAllowTf32(cfg_.allowTf32);
  lap(nullptr);
  toDevice(x_.data(), x, size_t(rows) * dIn * sizeof(float));
  lap("batch to device");
  const float* xin = x_.data();
  if (cfg_.applyBDecToInput) {
    LAUNCH(subtractBias, blocksFor(size_t(rows) * dIn), THREADS, xin_.data(), x_.data(), value_[B_DEC].data(),
           size_t(rows) * dIn, dIn);
    xin = xin_.data();
  }
  sgemm(false, false, rows, dSae, dIn, 1.f, xin, dIn, value_[W_ENC].data(), dSae, 0.f, z_.data(), dSae);
  lap("encode (gemm)");
  const float halfBw = float(cfg_.bandwidth / 2.0);
  const int featureSegments = segmentsFor(dSae, rows), inputSegments = segmentsFor(dIn, rows);
  LAUNCH(gateForward, blocksFor(size_t(featureSegments) * dSae), THREADS, z_.data(), f_.data(), value_[B_ENC].data(),
         value_[LOG_THRESHOLD].data(), intPartA_.data(), intPartB_.data(), rows, dSae, featureSegments, halfBw);
  LAUNCH(countFirings, blocksFor(dSae), THREADS, intPartA_.data(), intPartB_.data(), value_[LOG_THRESHOLD].data(),
         thr_.data(), fired_.data(), window_.data(), dSae, featureSegments);
  lap("gate forward");
  sgemm(false, false, rows, dIn, dSae, 1.f, f_.data(), dSae, value_[W_DEC].data(), dIn, 0.f, g_.data(), dIn);
  lap("decode (gemm)");
  LAUNCH(errorColumns, blocksFor(size_t(inputSegments) * dIn), THREADS, g_.data(), x_.data(), value_[B_DEC].data(),
         partA_.data(), partB_.data(), rows, dIn, inputSegments, float(2.0 / rows), training);
  LAUNCH(sumSegments, blocksFor(dIn), THREADS, partA_.data(), colSq_.data(), partB_.data(), gColSum_.data(), dIn,
         inputSegments);
  lap("error columns");
  return xin;
}

// The gradients, with the weights of before the update: the weight groups' into Adam's m
// (beta1 = 0: m is the gradient), log_threshold's into dSaeScratch_.
void SaeCuda::backward(int rows, const float* xin, double lambda) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  // dW_dec = f^T g; then df = g W_dec^T overwrites f, which is no longer needed.
  sgemm(true, false, dSae, dIn, rows, 1.f, f_.data(), dSae, g_.data(), dIn, 0.f, m_[W_DEC].data(), dIn);
  lap("dW_dec (gemm)");
  sgemm(false, true, rows, dSae, dIn, 1.f, g_.data(), dIn, value_[W_DEC].data(), dIn, 0.f, f_.data(), dSae);
  lap("df (gemm)");
  const int segments = segmentsFor(dSae, rows);
  LAUNCH(gateBackward, blocksFor(size_t(segments) * dSae), THREADS, f_.data(), z_.data(), thr_.data(), partA_.data(),
         partB_.data(), rows, dSae, segments, float(cfg_.bandwidth / 2.0));
  LAUNCH(sumSegments, blocksFor(dSae), THREADS, partA_.data(), windowDot_.data(), partB_.data(), bEncSum_.data(), dSae,
         segments);
  LAUNCH(thresholdGradients, blocksFor(dSae), THREADS, windowDot_.data(), bEncSum_.data(), window_.data(),
         thr_.data(), m_[B_ENC].data(), bEncGradF_.data(), dSaeScratch_.data(), dSae, cfg_.bandwidth, lambda / rows);
  lap("gate backward");
  // dW_enc = x'^T dz
  sgemm(true, false, dIn, dSae, rows, 1.f, xin, dIn, f_.data(), dSae, 0.f, m_[W_ENC].data(), dSae);
  lap("dW_enc (gemm)");
  // The b_dec gradient's encoder term: W_enc colsum(dz), a [d_in, d_sae] x [d_sae, 1] product.
  if (cfg_.applyBDecToInput)
    sgemm(false, false, dIn, 1, dSae, 1.f, value_[W_ENC].data(), dSae, bEncGradF_.data(), 1, 0.f,
          dInScratch_.data(), 1);
  LAUNCH(bDecGradient, blocksFor(dIn), THREADS, m_[B_DEC].data(), gColSum_.data(), dInScratch_.data(), dIn,
         cfg_.applyBDecToInput);
  lap("b_dec gradient");
}

// Adam on the three groups, the decoder's projection and renormalisation, sinceFired.
void SaeCuda::update(double lr, int rows) {
  const int dIn = cfg_.dIn, dSae = cfg_.dSae;
  const size_t weights = size_t(dIn) * dSae;
  double t[N_GROUPS];
  for (int g = 0; g < N_GROUPS; g++) t[g] = ++adamSteps[g];
  const AdamScalars enc(ADAM_GROUPS[0], t[0], lr), dec(ADAM_GROUPS[1], t[1], lr), th(ADAM_GROUPS[2], t[2], lr);
  const float* noGrad = nullptr;
  lap(nullptr);
  LAUNCH(adam, blocksFor(weights), THREADS, value_[W_ENC].data(), m_[W_ENC].data(), v_[W_ENC].data(), noGrad,
         weights, enc);
  LAUNCH(adam, blocksFor(dSae), THREADS, value_[B_ENC].data(), m_[B_ENC].data(), v_[B_ENC].data(), noGrad,
         size_t(dSae), enc);
  lap("adam encoder");
  LAUNCH(projectRows, blocksFor(dSae), THREADS, value_[W_DEC].data(), m_[W_DEC].data(), dSae, dIn);
  lap("decoder projection");
  LAUNCH(adam, blocksFor(weights), THREADS, value_[W_DEC].data(), m_[W_DEC].data(), v_[W_DEC].data(), noGrad,
         weights, dec);
  lap("adam decoder");
  LAUNCH(renormaliseRows, blocksFor(dSae), THREADS, value_[W_DEC].data(), dSae, dIn);
  lap("decoder renormalisation");
  LAUNCH(adam, blocksFor(dIn), THREADS, value_[B_DEC].data(), m_[B_DEC].data(), v_[B_DEC].data(), noGrad,
         size_t(dIn), dec);
  const float* gThr = dSaeScratch_.data();
  LAUNCH(adam, blocksFor(dSae), THREADS, value_[LOG_THRESHOLD].data(), m_[LOG_THRESHOLD].data(),
         v_[LOG_THRESHOLD].data(), gThr, size_t(dSae), th);
  LAUNCH(updateSinceFired, blocksFor(dSae), THREADS, sinceFired_.data(), fired_.data(), dSae, float(rows));
  lap("adam tail");
}

StepStats SaeCuda::step(const float* x, int rows, double lambda, double lr) {
  const float* xin = forward(x, rows, true);
  backward(rows, xin, lambda);
  const int dIn = cfg_.dIn, segments = segmentsFor(dIn, rows);
  LAUNCH(momentColumns, blocksFor(size_t(segments) * dIn), THREADS, x_.data(), partA_.data(), partB_.data(), rows, dIn,
         segments);
  LAUNCH(sumSegments, blocksFor(dIn), THREADS, partA_.data(), colSum_.data(), partB_.data(), colSqX_.data(), dIn, segments);
  LAUNCH(varianceColumns, blocksFor(dIn), THREADS, colSum_.data(), colSqX_.data(), colVar_.data(), rows, dIn);
  StepStats st;
  st.rec = sumDoubles(colSq_) / rows;
  st.l0 = sumInts(fired_) / rows;
  st.totalVar = sumDoubles(colVar_);
  lap("statistics to host");
  update(lr, rows);
  synchronize();
  return st;
}

EvalStats SaeCuda::evaluate(const float* x, int rows, float* fired) {
  forward(x, rows, false);
  std::vector<int> counts(cfg_.dSae);
  toHost(counts.data(), fired_.data(), counts.size() * sizeof(int));
  double active = 0;
  for (int j = 0; j < cfg_.dSae; j++) {
    fired[j] = float(counts[j]);
    active += counts[j];
  }
  return {sumDoubles(colSq_), active};
}

// ---------------------------------------------------------------------------------------------

double sgemmBench(int m, int n, int k, int reps, bool allowTf32) {
  blasAllowTf32(allowTf32);
  DeviceArray<float> a(size_t(m) * k), b(size_t(k) * n), c(size_t(m) * n);
  sgemm(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);  // warm-up
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; r++) sgemm(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
  synchronize();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * m * n * k * reps / s / 1e9;
}

}  // namespace sae_cuda
