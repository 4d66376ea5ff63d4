// The N-API face of SaeCore (sae_core.h): the JS class Sae and module functions that
// src/sae/engines/native.ts drives, plus
//   - new Sae({..., path?: 'auto' | 'dense' | 'sparse', maxChunkRows?: number}) (tests, benchmarks);
//   - setState(s) with s.adam and s.sinceFired optional (a fresh start: zeros);
//   - getArray(path) / setArray(path, values) / getSteps() / setSteps(steps): the state one array at
//     a time (path 'weights.W_enc', 'adam.m.b_dec', 'adam.v.log_threshold', 'sinceFired'), so a
//     checkpoint never needs a second whole copy of the state in memory;
//   - bytes(), lastPath(), profile(); module functions estimateBytes(dIn, dSae, rows) and
//     sgemmBench(m, n, k, reps, threads).
// Every bad argument becomes a JS Error naming the method and the field; nothing here aborts.
#include <napi.h>

#include <cblas.h>
#include <omp.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "../common/napi_args.h"
#include "sae_core.h"

namespace {

using sae::N_PARAMS;
using sae::Param;
using sae::PARAM_NAMES;

using napi_args::fail;
using napi_args::finiteNumber;
using napi_args::float32Array;
using napi_args::objectField;
using napi_args::positiveInt;

double numberField(Napi::Env env, const Napi::Object& o, const char* where, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) fail(env, std::string(where) + ": '" + name + "' must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

std::string openblasVersion() {
  // openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"
  std::string cfg = openblas_get_config();
  const size_t sp = cfg.find(' ', cfg.find(' ') + 1);
  return sp == std::string::npos ? cfg : cfg.substr(0, sp);
}

class Sae : public Napi::ObjectWrap<Sae> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sae",
                       {InstanceMethod<&Sae::SetState>("setState"), InstanceMethod<&Sae::GetState>("getState"),
                        InstanceMethod<&Sae::Step>("step"), InstanceMethod<&Sae::Evaluate>("evaluate"),
                        InstanceMethod<&Sae::DeadFraction>("deadFraction"), InstanceMethod<&Sae::Bytes>("bytes"),
                        InstanceMethod<&Sae::LastPath>("lastPath"), InstanceMethod<&Sae::Profile>("profile"),
                        InstanceMethod<&Sae::GetArray>("getArray"), InstanceMethod<&Sae::SetArray>("setArray"),
                        InstanceMethod<&Sae::EndTraining>("endTraining"),
                        InstanceMethod<&Sae::GetSteps>("getSteps"), InstanceMethod<&Sae::SetSteps>("setSteps"),
                        InstanceMethod<&Sae::Dispose>("dispose")});
  }

  explicit Sae(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sae>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) fail(env, "new Sae(options): options must be an object");
    const Napi::Object o = info[0].As<Napi::Object>();
    sae::Config cfg;
    cfg.dIn = positiveInt(env, o.Get("dIn"), "new Sae: dIn");
    cfg.dSae = positiveInt(env, o.Get("dSae"), "new Sae: dSae");
    cfg.threads = positiveInt(env, o.Get("threads"), "new Sae: threads");
    if (!o.Get("applyBDecToInput").IsBoolean()) fail(env, "new Sae: applyBDecToInput must be a boolean");
    cfg.applyBDecToInput = o.Get("applyBDecToInput").As<Napi::Boolean>().Value();
    const double bw = numberField(env, o, "new Sae", "bandwidth");
    if (!(bw > 0 && std::isfinite(bw))) fail(env, "new Sae: bandwidth must be a positive number");
    cfg.bandwidth = float(bw);
    const Napi::Value path = o.Get("path");
    if (!path.IsUndefined()) {
      const std::string p = path.IsString() ? path.As<Napi::String>().Utf8Value() : "";
      if (p != "auto" && p != "dense" && p != "sparse") fail(env, "new Sae: path must be 'auto', 'dense' or 'sparse'");
      cfg.path = p == "auto" ? sae::PATH_AUTO : p == "dense" ? sae::PATH_DENSE : sae::PATH_SPARSE;
    }
    if (!o.Get("maxChunkRows").IsUndefined()) cfg.maxChunkRows = positiveInt(env, o.Get("maxChunkRows"), "new Sae: maxChunkRows");
    if (double(cfg.dIn) * cfg.dSae > 2147483647.0) fail(env, "new Sae: d_in x d_sae must stay below 2^31");
    try {
      core_ = std::make_unique<sae::SaeCore>(cfg);
    } catch (const std::bad_alloc&) {
      fail(env, "new Sae: cannot allocate " + std::to_string(sae::SaeCore::estimateBytes(cfg.dIn, cfg.dSae, 1)) +
                    " bytes for the parameters and Adam state");
    }
    track(env);
  }

  ~Sae() override = default;

 private:
  std::unique_ptr<sae::SaeCore> core_;
  int64_t reported_ = 0;  // bytes reported to V8 as external memory

  // Tells V8 how much native memory this object holds, so its GC runs finalisers in time.
  void track(Napi::Env env) {
    const int64_t now = core_ ? int64_t(core_->bytes()) : 0;
    if (now != reported_) Napi::MemoryManagement::AdjustExternalMemory(env, now - reported_);
    reported_ = now;
  }

  sae::SaeCore& live(Napi::Env env, const char* method) {
    if (!core_) fail(env, std::string("Sae.") + method + ": this Sae was disposed");
    return *core_;
  }

  // Methods that read or write the optimiser state or step refuse once endTraining() freed it.
  sae::SaeCore& training(Napi::Env env, const char* method) {
    sae::SaeCore& c = live(env, method);
    if (!c.training())
      fail(env, std::string("Sae.") + method + ": training was ended (endTraining): only evaluate and the weights remain");
    return c;
  }

  void EndTraining(const Napi::CallbackInfo& info) {
    live(info.Env(), "endTraining").endTraining();
    track(info.Env());
  }

  // setState(state): weights required; adam and sinceFired optional (a fresh start: zero moments,
  // step counts and counters, so a caller need not allocate 4 x d_in x d_sae zeros in JS).
  void SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = training(env, "setState");
    if (!info[0].IsObject()) fail(env, "Sae.setState: state must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
    // Validate everything first: a bad state leaves the old one untouched.
    const bool hasAdam = !s.Get("adam").IsUndefined(), hasSince = !s.Get("sinceFired").IsUndefined();
    std::vector<Napi::Object> groups = {objectField(env, s, "weights", "state")};
    if (hasAdam) {
      const Napi::Object adam = objectField(env, s, "adam", "state");
      groups.push_back(objectField(env, adam, "m", "state.adam"));
      groups.push_back(objectField(env, adam, "v", "state.adam"));
    }
    const char* groupNames[3] = {"state.weights.", "state.adam.m.", "state.adam.v."};
    std::vector<Napi::Float32Array> arrays;
    for (size_t w = 0; w < groups.size(); w++)
      for (int p = 0; p < N_PARAMS; p++)
        arrays.push_back(float32Array(env, groups[w].Get(PARAM_NAMES[p]), std::string("Sae.setState: ") +
                                          groupNames[w] + PARAM_NAMES[p], c.paramSize(Param(p)), true));
    double steps[sae::N_GROUPS] = {0, 0, 0};
    if (hasAdam) readSteps(env, objectField(env, s, "adam", "state").Get("steps"), "Sae.setState: state.adam.steps", steps);
    const Napi::Float32Array since =
        hasSince ? float32Array(env, s.Get("sinceFired"), "Sae.setState: state.sinceFired", c.config().dSae, true)
                 : Napi::Float32Array();
    for (int w = 0; w < 3; w++)
      for (int p = 0; p < N_PARAMS; p++) {
        if (size_t(w) < groups.size()) c.setArray(w, Param(p), arrays[w * N_PARAMS + p].Data());
        else c.zeroArray(w, Param(p));
      }
    for (int g = 0; g < sae::N_GROUPS; g++) c.adamSteps[g] = steps[g];
    if (hasSince) std::copy(since.Data(), since.Data() + c.config().dSae, c.sinceFired());
    else std::fill(c.sinceFired(), c.sinceFired() + c.config().dSae, 0.f);
  }

  static void readSteps(Napi::Env env, Napi::Value v, const std::string& what, double* steps) {
    if (!v.IsArray() || v.As<Napi::Array>().Length() != sae::N_GROUPS)
      fail(env, what + " must be an array of 3 step counts");
    for (uint32_t g = 0; g < sae::N_GROUPS; g++) {
      const Napi::Value e = v.As<Napi::Array>().Get(g);
      steps[g] = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
      if (!(steps[g] >= 0 && std::floor(steps[g]) == steps[g]))
        fail(env, what + "[" + std::to_string(g) + "] must be a non-negative integer");
    }
  }

  // One array of the state by path ('weights.W_enc', 'adam.m.b_dec', 'adam.v.log_threshold',
  // 'sinceFired'): a checkpoint can be written or read one array at a time, without a second
  // copy of the whole state in JS. -1 / param: which (0 weights, 1 m, 2 v) and the parameter.
  static bool parsePath(const std::string& path, int& which, int& param) {
    const char* prefixes[3] = {"weights.", "adam.m.", "adam.v."};
    for (which = 0; which < 3; which++)
      if (path.rfind(prefixes[which], 0) == 0)
        for (param = 0; param < N_PARAMS; param++)
          if (path.substr(std::string(prefixes[which]).size()) == PARAM_NAMES[param]) return true;
    which = -1;
    return path == "sinceFired";
  }

  std::string pathArg(Napi::Env env, Napi::Value v, const char* method, int& which, int& param) {
    const std::string path = v.IsString() ? v.As<Napi::String>().Utf8Value() : "";
    if (!parsePath(path, which, param))
      fail(env, std::string("Sae.") + method + ": unknown array '" + path +
                    "' (weights.<name>, adam.m.<name>, adam.v.<name> or sinceFired)");
    return path;
  }

  // getArray(path[, offset, count]): a copy of one array, or of values [offset, offset + count)
  // of it (W_enc: whole rows of d_sae), so that a checkpoint is written in chunks.
  Napi::Value GetArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = live(env, "getArray");
    int which, param;
    const std::string path = pathArg(env, info[0], "getArray", which, param);
    if (which > 0) training(env, "getArray");
    const size_t size = which < 0 ? size_t(c.config().dSae) : c.paramSize(Param(param));
    size_t offset = 0, count = size;
    if (!info[1].IsUndefined()) {
      const double o = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
      const double n = info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : -1;
      const size_t row = which >= 0 && Param(param) == sae::W_ENC ? size_t(c.config().dSae) : 1;
      if (!(o >= 0 && n >= 0 && std::floor(o) == o && std::floor(n) == n && o + n <= double(size)) ||
          size_t(o) % row || size_t(n) % row)
        fail(env, "Sae.getArray: " + path + ": range [" + std::to_string(o) + ", +" + std::to_string(n) +
                      ") is not within its " + std::to_string(size) + " values" +
                      (row > 1 ? " in whole rows of " + std::to_string(row) : ""));
      offset = size_t(o), count = size_t(n);
    }
    Napi::Float32Array a = Napi::Float32Array::New(env, count);
    if (which < 0) std::copy(c.sinceFired() + offset, c.sinceFired() + offset + count, a.Data());
    else c.getArrayRange(which, Param(param), offset, count, a.Data());
    return a;
  }

  void SetArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = training(env, "setArray");
    int which, param;
    const std::string path = pathArg(env, info[0], "setArray", which, param);
    const size_t n = which < 0 ? size_t(c.config().dSae) : c.paramSize(Param(param));
    const Napi::Float32Array a = float32Array(env, info[1], "Sae.setArray: " + path, n, true);
    if (which < 0) std::copy(a.Data(), a.Data() + n, c.sinceFired());
    else c.setArray(which, Param(param), a.Data());
  }

  Napi::Value GetSteps(const Napi::CallbackInfo& info) {
    sae::SaeCore& c = live(info.Env(), "getSteps");
    Napi::Array steps = Napi::Array::New(info.Env(), sae::N_GROUPS);
    for (uint32_t g = 0; g < sae::N_GROUPS; g++) steps.Set(g, c.adamSteps[g]);
    return steps;
  }

  void SetSteps(const Napi::CallbackInfo& info) {
    sae::SaeCore& c = training(info.Env(), "setSteps");
    double steps[sae::N_GROUPS];
    readSteps(info.Env(), info[0], "Sae.setSteps: steps", steps);
    for (int g = 0; g < sae::N_GROUPS; g++) c.adamSteps[g] = steps[g];
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = training(env, "getState");
    Napi::Object groups[3] = {Napi::Object::New(env), Napi::Object::New(env), Napi::Object::New(env)};
    for (int w = 0; w < 3; w++)
      for (int p = 0; p < N_PARAMS; p++) {
        Napi::Float32Array a = Napi::Float32Array::New(env, c.paramSize(Param(p)));
        c.getArray(w, Param(p), a.Data());
        groups[w].Set(PARAM_NAMES[p], a);
      }
    Napi::Object adam = Napi::Object::New(env);
    adam.Set("m", groups[1]);
    adam.Set("v", groups[2]);
    Napi::Array steps = Napi::Array::New(env, sae::N_GROUPS);
    for (uint32_t g = 0; g < sae::N_GROUPS; g++) steps.Set(g, c.adamSteps[g]);
    adam.Set("steps", steps);
    Napi::Float32Array since = Napi::Float32Array::New(env, c.config().dSae);
    std::copy(c.sinceFired(), c.sinceFired() + c.config().dSae, since.Data());
    Napi::Object s = Napi::Object::New(env);
    s.Set("weights", groups[0]);
    s.Set("adam", adam);
    s.Set("sinceFired", since);
    return s;
  }

  // Shared argument checks of step() and evaluate(): x holds at least rows x d_in values.
  const float* batch(const Napi::CallbackInfo& info, const char* method, int& rows) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = live(env, method);
    rows = positiveInt(env, info[1], std::string("Sae.") + method + ": rows");
    const size_t need = size_t(rows) * c.config().dIn;
    return float32Array(env, info[0], std::string("Sae.") + method + ": x", need, false).Data();
  }

  template <class Fn>
  auto guarded(Napi::Env env, const char* method, int rows, Fn fn) -> decltype(fn()) {
    try {
      auto r = fn();
      track(env);
      return r;
    } catch (const std::bad_alloc&) {
      fail(env, std::string("Sae.") + method + ": cannot allocate the scratch for " + std::to_string(rows) +
                    " rows (about " + std::to_string(sae::SaeCore::estimateBytes(core_->config().dIn,
                                                                                 core_->config().dSae, rows)) +
                    " bytes in all)");
    }
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int rows;
    training(env, "step");
    const float* x = batch(info, "step", rows);
    const double lambda = finiteNumber(env, info[2], "Sae.step: lambda");
    const double lr = finiteNumber(env, info[3], "Sae.step: lr");
    const sae::StepStats st = guarded(env, "step", rows, [&] { return core_->step(x, rows, lambda, lr); });
    Napi::Float64Array out = Napi::Float64Array::New(env, 3);
    out[0] = st.rec;
    out[1] = st.l0;
    out[2] = st.totalVar;
    return out;
  }

  Napi::Value Evaluate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int rows;
    const float* x = batch(info, "evaluate", rows);
    Napi::Float32Array fired =
        float32Array(env, info[2], "Sae.evaluate: fired", size_t(core_->config().dSae), true);
    const sae::EvalStats st =
        guarded(env, "evaluate", rows, [&] { return core_->evaluate(x, rows, fired.Data()); });
    Napi::Float64Array out = Napi::Float64Array::New(env, 2);
    out[0] = st.sqErr;
    out[1] = st.active;
    return out;
  }

  Napi::Value DeadFraction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae::SaeCore& c = live(env, "deadFraction");
    return Napi::Number::New(env, c.deadFraction(finiteNumber(env, info[0], "Sae.deadFraction: windowSamples")));
  }

  // profile(): CPU seconds per phase of the steps so far (benchmarks).
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    for (const auto& [phase, seconds] : live(info.Env(), "profile").profile()) o.Set(phase, seconds);
    return o;
  }

  Napi::Value LastPath(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), live(info.Env(), "lastPath").lastStepSparse() ? "sparse" : "dense");
  }

  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(live(info.Env(), "bytes").bytes()));
  }

  void Dispose(const Napi::CallbackInfo& info) {
    core_.reset();
    track(info.Env());
  }
};

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("blas", openblasVersion());
  o.Set("coretype", std::string(openblas_get_corename()));
  o.Set("threads", openblas_get_num_threads());
  o.Set("parallel", openblas_get_parallel() == 2 ? "openmp" : openblas_get_parallel() == 1 ? "pthread" : "none");
  o.Set("config", std::string(openblas_get_config()));
  return o;
}

// estimateBytes(dIn, dSae, rows): native bytes a training at this shape holds at its peak.
Napi::Value EstimateBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dIn = positiveInt(env, info[0], "estimateBytes: dIn");
  const int dSae = positiveInt(env, info[1], "estimateBytes: dSae");
  const int rows = positiveInt(env, info[2], "estimateBytes: rows");
  return Napi::Number::New(env, double(sae::SaeCore::estimateBytes(dIn, dSae, rows)));
}

// sgemmBench(m, n, k, reps, threads): GFLOP/s of C[m,n] = A[m,k] B[k,n] through the same BLAS,
// so a benchmark can put the step's rate beside the machine's matrix-product rate.
Napi::Value SgemmBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int m = positiveInt(env, info[0], "sgemmBench: m"), n = positiveInt(env, info[1], "sgemmBench: n");
  const int k = positiveInt(env, info[2], "sgemmBench: k"), reps = positiveInt(env, info[3], "sgemmBench: reps");
  const int threads = positiveInt(env, info[4], "sgemmBench: threads");
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
  std::vector<float> a(size_t(m) * k, 0.5f), b(size_t(k) * n, 0.25f), c(size_t(m) * n);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; r++)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, c.data(), n);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return Napi::Number::New(env, 2.0 * m * n * k * reps / s / 1e9);
}

// detach(typedArray): frees the array's buffer now (napi_detach_arraybuffer; the array then has
// length 0) instead of at the next garbage collection, which may come long after a model-sized
// array became garbage. Returns whether it was detached.
Napi::Value Detach(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) fail(env, "detach: expected a typed array");
  Napi::ArrayBuffer buffer = info[0].As<Napi::TypedArray>().ArrayBuffer();
  return Napi::Boolean::New(env, napi_detach_arraybuffer(env, buffer) == napi_ok);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Sae", Sae::Define(env));
  exports.Set("detach", Napi::Function::New(env, Detach, "detach"));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("estimateBytes", Napi::Function::New(env, EstimateBytes, "estimateBytes"));
  exports.Set("sgemmBench", Napi::Function::New(env, SgemmBench, "sgemmBench"));
  return exports;
}

}  // namespace

NODE_API_MODULE(sae_native, Init)
