// Argument checks shared by the CPU and CUDA addons: every bad argument becomes a JS Error that
// names the method and the field (`what`), never an abort. Header-only; each addon includes it
// once, inside its own translation unit.
#pragma once
#include <napi.h>

#include <cmath>
#include <string>

namespace napi_args {

[[noreturn]] inline void fail(Napi::Env env, const std::string& msg) { throw Napi::Error::New(env, msg); }

inline int positiveInt(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) fail(env, what + " must be a positive integer");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 1 && d <= 2147483647.0 && std::floor(d) == d))
    fail(env, what + " must be a positive integer, got " + std::to_string(d));
  return int(d);
}

inline double finiteNumber(Napi::Env env, Napi::Value v, const std::string& what) {
  if (!v.IsNumber()) fail(env, what + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(env, what + " must be finite, got " + std::to_string(d));
  return d;
}

// A Float32Array of exactly `length` values, or of at least `length` when !exact.
inline Napi::Float32Array float32Array(Napi::Env env, Napi::Value v, const std::string& what, size_t length,
                                       bool exact) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(env, what + " must be a Float32Array");
  Napi::Float32Array a = v.As<Napi::Float32Array>();
  if (exact ? a.ElementLength() != length : a.ElementLength() < length)
    fail(env, what + " has " + std::to_string(a.ElementLength()) + " values, expected " + (exact ? "" : "at least ") +
                  std::to_string(length));
  return a;
}

inline Napi::Object objectField(Napi::Env env, const Napi::Object& o, const char* name, const std::string& where) {
  Napi::Value v = o.Get(name);
  if (!v.IsObject()) fail(env, where + "." + name + " must be an object");
  return v.As<Napi::Object>();
}

}  // namespace napi_args
