// The N-API face of SaeCuda (sae_cuda.h): the same JS class and functions as the CPU addon
// (native/cpu/addon.cc), so src/sae/engines/cuda.ts drives it like the native engine:
//   new Sae({dIn, dSae, applyBDecToInput, bandwidth, allowTf32?, profile?}), setState / getState (adam and
//   sinceFired optional: a fresh start), getArray / setArray / getSteps / setSteps, step,
//   evaluate, deadFraction, bytes, profile, dispose; module functions info(), estimateBytes(dIn, dSae,
//   rows) and sgemmBench(m, n, k, reps, allowTf32?).
// info() never throws: on a machine without a GPU it says "no CUDA device (...)" in `error`.
// Every bad argument and every CUDA failure becomes a JS Error naming the method; nothing aborts.
#include <napi.h>

#include <cmath>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/napi_args.h"
#include "device.h"
#include "sae_cuda.h"

namespace {

using sae_cuda::N_PARAMS;
using sae_cuda::Param;
using sae_cuda::PARAM_NAMES;

using napi_args::fail;
using napi_args::finiteNumber;
using napi_args::float32Array;
using napi_args::objectField;
using napi_args::positiveInt;

// Runs fn, turning the device's failures into JS errors that name the method.
template <class Fn>
auto guarded(Napi::Env env, const std::string& method, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    fail(env, method + ": out of device memory");
  } catch (const std::runtime_error& e) {
    fail(env, method + ": " + e.what());
  }
}

class Sae : public Napi::ObjectWrap<Sae> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Sae",
                       {InstanceMethod<&Sae::SetState>("setState"), InstanceMethod<&Sae::GetState>("getState"),
                        InstanceMethod<&Sae::Step>("step"), InstanceMethod<&Sae::Evaluate>("evaluate"),
                        InstanceMethod<&Sae::DeadFraction>("deadFraction"), InstanceMethod<&Sae::Bytes>("bytes"),
                        InstanceMethod<&Sae::GetArray>("getArray"), InstanceMethod<&Sae::SetArray>("setArray"),
                        InstanceMethod<&Sae::GetSteps>("getSteps"), InstanceMethod<&Sae::SetSteps>("setSteps"),
                        InstanceMethod<&Sae::Profile>("profile"), InstanceMethod<&Sae::Dispose>("dispose")});
  }

  explicit Sae(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Sae>(info) {
    Napi::Env env = info.Env();
    if (!info[0].IsObject()) fail(env, "new Sae(options): options must be an object");
    const Napi::Object o = info[0].As<Napi::Object>();
    sae_cuda::Config cfg;
    cfg.dIn = positiveInt(env, o.Get("dIn"), "new Sae: dIn");
    cfg.dSae = positiveInt(env, o.Get("dSae"), "new Sae: dSae");
    if (!o.Get("applyBDecToInput").IsBoolean()) fail(env, "new Sae: applyBDecToInput must be a boolean");
    cfg.applyBDecToInput = o.Get("applyBDecToInput").As<Napi::Boolean>().Value();
    const double bw = o.Get("bandwidth").IsNumber() ? o.Get("bandwidth").As<Napi::Number>().DoubleValue() : NAN;
    if (!(bw > 0 && std::isfinite(bw))) fail(env, "new Sae: bandwidth must be a positive number");
    cfg.bandwidth = float(bw);
    const Napi::Value tf32 = o.Get("allowTf32");
    if (!tf32.IsUndefined() && !tf32.IsBoolean()) fail(env, "new Sae: allowTf32 must be a boolean");
    cfg.allowTf32 = tf32.IsBoolean() && tf32.As<Napi::Boolean>().Value();
    const Napi::Value profile = o.Get("profile");
    if (!profile.IsUndefined() && !profile.IsBoolean()) fail(env, "new Sae: profile must be a boolean");
    cfg.profile = profile.IsBoolean() && profile.As<Napi::Boolean>().Value();
    if (double(cfg.dIn) * cfg.dSae > 2147483647.0) fail(env, "new Sae: d_in x d_sae must stay below 2^31");
    const std::string noDevice = sae_cuda::deviceError();
    if (!noDevice.empty()) fail(env, "new Sae: " + noDevice);
    core_ = guarded(env, "new Sae", [&] { return std::make_unique<sae_cuda::SaeCuda>(cfg); });
  }

 private:
  std::unique_ptr<sae_cuda::SaeCuda> core_;

  sae_cuda::SaeCuda& live(Napi::Env env, const char* method) {
    if (!core_) fail(env, std::string("Sae.") + method + ": this Sae was disposed");
    return *core_;
  }

  static void readSteps(Napi::Env env, Napi::Value v, const std::string& what, double* steps) {
    if (!v.IsArray() || v.As<Napi::Array>().Length() != sae_cuda::N_GROUPS)
      fail(env, what + " must be an array of 3 step counts");
    for (uint32_t g = 0; g < sae_cuda::N_GROUPS; g++) {
      const Napi::Value e = v.As<Napi::Array>().Get(g);
      steps[g] = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
      if (!(steps[g] >= 0 && std::floor(steps[g]) == steps[g]))
        fail(env, what + "[" + std::to_string(g) + "] must be a non-negative integer");
    }
  }

  // setState(state): weights required; adam and sinceFired optional (zeros: a fresh start).
  // Everything is validated before anything is copied: a bad state leaves the old one untouched.
  void SetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, "setState");
    if (!info[0].IsObject()) fail(env, "Sae.setState: state must be an object");
    const Napi::Object s = info[0].As<Napi::Object>();
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
        arrays.push_back(float32Array(env, groups[w].Get(PARAM_NAMES[p]),
                                      std::string("Sae.setState: ") + groupNames[w] + PARAM_NAMES[p],
                                      c.paramSize(Param(p)), true));
    double steps[sae_cuda::N_GROUPS] = {0, 0, 0};
    if (hasAdam) readSteps(env, objectField(env, s, "adam", "state").Get("steps"), "Sae.setState: state.adam.steps", steps);
    const Napi::Float32Array since =
        hasSince ? float32Array(env, s.Get("sinceFired"), "Sae.setState: state.sinceFired", c.config().dSae, true)
                 : Napi::Float32Array();
    guarded(env, "Sae.setState", [&] {
      for (int w = 0; w < 3; w++)
        for (int p = 0; p < N_PARAMS; p++) {
          if (size_t(w) < groups.size()) c.setArray(w, Param(p), arrays[w * N_PARAMS + p].Data());
          else c.zeroArray(w, Param(p));
        }
      if (hasSince) c.setSinceFired(since.Data());
      else c.setSinceFired(std::vector<float>(c.config().dSae, 0.f).data());
      return 0;
    });
    for (int g = 0; g < sae_cuda::N_GROUPS; g++) c.adamSteps[g] = steps[g];
  }

  // 'weights.W_enc', 'adam.m.b_dec', 'adam.v.log_threshold' or 'sinceFired' (which = -1).
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

  Napi::Float32Array readArray(Napi::Env env, sae_cuda::SaeCuda& c, int which, int param) {
    const size_t n = which < 0 ? size_t(c.config().dSae) : c.paramSize(Param(param));
    Napi::Float32Array a = Napi::Float32Array::New(env, n);
    guarded(env, "Sae.getArray", [&] {
      if (which < 0) c.getSinceFired(a.Data());
      else c.getArray(which, Param(param), a.Data());
      return 0;
    });
    return a;
  }

  Napi::Value GetArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, "getArray");
    int which, param;
    pathArg(env, info[0], "getArray", which, param);
    return readArray(env, c, which, param);
  }

  void SetArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, "setArray");
    int which, param;
    const std::string path = pathArg(env, info[0], "setArray", which, param);
    const size_t n = which < 0 ? size_t(c.config().dSae) : c.paramSize(Param(param));
    const Napi::Float32Array a = float32Array(env, info[1], "Sae.setArray: " + path, n, true);
    guarded(env, "Sae.setArray", [&] {
      if (which < 0) c.setSinceFired(a.Data());
      else c.setArray(which, Param(param), a.Data());
      return 0;
    });
  }

  Napi::Value GetSteps(const Napi::CallbackInfo& info) {
    sae_cuda::SaeCuda& c = live(info.Env(), "getSteps");
    Napi::Array steps = Napi::Array::New(info.Env(), sae_cuda::N_GROUPS);
    for (uint32_t g = 0; g < sae_cuda::N_GROUPS; g++) steps.Set(g, c.adamSteps[g]);
    return steps;
  }

  void SetSteps(const Napi::CallbackInfo& info) {
    sae_cuda::SaeCuda& c = live(info.Env(), "setSteps");
    double steps[sae_cuda::N_GROUPS];
    readSteps(info.Env(), info[0], "Sae.setSteps: steps", steps);
    for (int g = 0; g < sae_cuda::N_GROUPS; g++) c.adamSteps[g] = steps[g];
  }

  Napi::Value GetState(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, "getState");
    Napi::Object groups[3] = {Napi::Object::New(env), Napi::Object::New(env), Napi::Object::New(env)};
    for (int w = 0; w < 3; w++)
      for (int p = 0; p < N_PARAMS; p++) groups[w].Set(PARAM_NAMES[p], readArray(env, c, w, p));
    Napi::Object adam = Napi::Object::New(env);
    adam.Set("m", groups[1]);
    adam.Set("v", groups[2]);
    adam.Set("steps", GetSteps(info));
    Napi::Object s = Napi::Object::New(env);
    s.Set("weights", groups[0]);
    s.Set("adam", adam);
    s.Set("sinceFired", readArray(env, c, -1, 0));
    return s;
  }

  // Shared argument checks of step() and evaluate(): x holds at least rows x d_in values.
  const float* batch(const Napi::CallbackInfo& info, const char* method, int& rows) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, method);
    rows = positiveInt(env, info[1], std::string("Sae.") + method + ": rows");
    const size_t need = size_t(rows) * c.config().dIn;
    return float32Array(env, info[0], std::string("Sae.") + method + ": x", need, false).Data();
  }

  Napi::Value Step(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    int rows;
    const float* x = batch(info, "step", rows);
    const double lambda = finiteNumber(env, info[2], "Sae.step: lambda");
    const double lr = finiteNumber(env, info[3], "Sae.step: lr");
    const sae_cuda::StepStats st = guarded(env, "Sae.step", [&] { return core_->step(x, rows, lambda, lr); });
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
    Napi::Float32Array fired = float32Array(env, info[2], "Sae.evaluate: fired", size_t(core_->config().dSae), true);
    const sae_cuda::EvalStats st =
        guarded(env, "Sae.evaluate", [&] { return core_->evaluate(x, rows, fired.Data()); });
    Napi::Float64Array out = Napi::Float64Array::New(env, 2);
    out[0] = st.sqErr;
    out[1] = st.active;
    return out;
  }

  Napi::Value DeadFraction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    sae_cuda::SaeCuda& c = live(env, "deadFraction");
    const double window = finiteNumber(env, info[0], "Sae.deadFraction: windowSamples");
    return Napi::Number::New(env, guarded(env, "Sae.deadFraction", [&] { return c.deadFraction(window); }));
  }

  // profile(): wall seconds per phase of the steps so far (new Sae({..., profile: true}); benchmarks).
  Napi::Value Profile(const Napi::CallbackInfo& info) {
    Napi::Object o = Napi::Object::New(info.Env());
    for (const auto& [phase, seconds] : live(info.Env(), "profile").profile()) o.Set(phase, seconds);
    return o;
  }

  Napi::Value Bytes(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), double(live(info.Env(), "bytes").bytes()));
  }

  void Dispose(const Napi::CallbackInfo&) { core_.reset(); }
};

// info(): what this build runs on. Never throws: `error` says why no step can run here.
Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("emulated", sae_cuda::emulated());
  const std::string error = sae_cuda::deviceError();
  o.Set("error", error.empty() ? env.Null() : Napi::String::New(env, error));
  if (error.empty()) {
    try {
      o.Set("device", sae_cuda::deviceName());
      o.Set("blas", sae_cuda::blasName());
      const std::string blasError = sae_cuda::blasError();
      o.Set("blasError", blasError.empty() ? env.Null() : Napi::String::New(env, blasError));
      o.Set("freeBytes", double(sae_cuda::deviceFreeBytes()));
    } catch (const std::exception& e) {
      o.Set("error", std::string("the CUDA device does not answer: ") + e.what());
    }
  }
  return o;
}

Napi::Value EstimateBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int dIn = positiveInt(env, info[0], "estimateBytes: dIn");
  const int dSae = positiveInt(env, info[1], "estimateBytes: dSae");
  const int rows = positiveInt(env, info[2], "estimateBytes: rows");
  return Napi::Number::New(env, double(sae_cuda::SaeCuda::estimateBytes(dIn, dSae, rows)));
}

// sgemmBench(m, n, k, reps, allowTf32?): GFLOP/s of the step's BLAS (cuBLAS on a device) at this shape.
Napi::Value SgemmBench(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int m = positiveInt(env, info[0], "sgemmBench: m"), n = positiveInt(env, info[1], "sgemmBench: n");
  const int k = positiveInt(env, info[2], "sgemmBench: k"), reps = positiveInt(env, info[3], "sgemmBench: reps");
  const std::string noDevice = sae_cuda::deviceError();
  if (!noDevice.empty()) fail(env, "sgemmBench: " + noDevice);
  const bool tf32 = info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  return Napi::Number::New(env, guarded(env, "sgemmBench", [&] { return sae_cuda::sgemmBench(m, n, k, reps, tf32); }));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Sae", Sae::Define(env));
  exports.Set("info", Napi::Function::New(env, Info, "info"));
  exports.Set("estimateBytes", Napi::Function::New(env, EstimateBytes, "estimateBytes"));
  exports.Set("sgemmBench", Napi::Function::New(env, SgemmBench, "sgemmBench"));
  return exports;
}

}  // namespace

NODE_API_MODULE(sae_cuda, Init)
