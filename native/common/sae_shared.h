// What the CPU core (native/cpu/sae_core.h) and the CUDA step (native/cuda/sae_cuda.h) share:
// the parameter names, the Adam groups with their per-step scalars, and the statistics a step
// returns. Defined once, so that the two engines cannot drift apart; both follow
// src/sae/jumprelu.ts. Plain C++17 (no CUDA types): nvcc and g++ both compile it.
#pragma once

#include <cmath>

namespace sae_shared {

enum Param { W_ENC = 0, B_ENC, W_DEC, B_DEC, LOG_THRESHOLD, N_PARAMS };
inline constexpr const char* PARAM_NAMES[N_PARAMS] = {"W_enc", "b_enc", "W_dec", "b_dec", "log_threshold"};

/** Adam groups (src/sae/jumprelu.ts ADAM_GROUPS): encoder, decoder, threshold. */
struct AdamGroup {
  double beta1, beta2, lrScale;
};
constexpr int N_GROUPS = 3;
inline constexpr AdamGroup ADAM_GROUPS[N_GROUPS] = {{0.0, 0.999, 1}, {0.0, 0.999, 1}, {0.99, 0.999, 2}};
constexpr double ADAM_EPS = 1e-8;

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

struct StepStats {
  double rec, l0, totalVar;
};
struct EvalStats {
  double sqErr, active;
};

}  // namespace sae_shared
