// Argument validation for the exported functions (see common.h for the conventions).
#include <cmath>
#include <string>

#include "common.h"

namespace nvmig {

namespace {

bool Throw(const Napi::Env& env, const std::string& message, bool range) {
  if (range) {
    Napi::RangeError::New(env, message).ThrowAsJavaScriptException();
  } else {
    Napi::TypeError::New(env, message).ThrowAsJavaScriptException();
  }
  return false;
}

bool IsUint(const Napi::Value& value, uint64_t max, uint64_t* out) {
  if (!value.IsNumber()) return false;
  double d = value.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || std::floor(d) != d || d > static_cast<double>(max)) return false;
  *out = static_cast<uint64_t>(d);
  return true;
}

}  // namespace

bool ArgFd(const Napi::CallbackInfo& info, size_t index, int* fd) {
  uint64_t value = 0;
  if (!IsUint(info[index], INT32_MAX, &value)) {
    return Throw(info.Env(), "argument " + std::to_string(index) + ": fd must be an integer >= 0", false);
  }
  *fd = static_cast<int>(value);
  return true;
}

bool ArgUint(const Napi::CallbackInfo& info, size_t index, uint64_t max, uint64_t* out, const char* name) {
  if (!IsUint(info[index], max, out)) {
    return Throw(info.Env(), std::string(name) + " must be an integer in [0, " + std::to_string(max) + "]",
                 info[index].IsNumber());
  }
  return true;
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index, bool* out, const char* name) {
  if (!info[index].IsBoolean()) return Throw(info.Env(), std::string(name) + " must be a boolean", false);
  *out = info[index].As<Napi::Boolean>().Value();
  return true;
}

bool ArgString(const Napi::CallbackInfo& info, size_t index, std::string* out, const char* name) {
  if (!info[index].IsString()) return Throw(info.Env(), std::string(name) + " must be a string", false);
  *out = info[index].As<Napi::String>().Utf8Value();
  return true;
}

bool ArgBytes(const Napi::CallbackInfo& info, size_t index, uint8_t** data, size_t* length) {
  Napi::Value value = info[index];
  if (value.IsTypedArray()) {
    Napi::TypedArray array = value.As<Napi::TypedArray>();
    Napi::ArrayBuffer buffer = array.ArrayBuffer();
    *data = static_cast<uint8_t*>(buffer.Data()) + array.ByteOffset();
    *length = array.ByteLength();
    return true;
  }
  if (value.IsArrayBuffer()) {
    Napi::ArrayBuffer buffer = value.As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(buffer.Data());
    *length = buffer.ByteLength();
    return true;
  }
  return Throw(info.Env(), "argument " + std::to_string(index) + " must be a TypedArray or an ArrayBuffer", false);
}

bool ArgFdArray(const Napi::CallbackInfo& info, size_t index, size_t max, std::vector<int>* fds) {
  if (!info[index].IsArray()) return Throw(info.Env(), "fds must be an array of fds", false);
  Napi::Array array = info[index].As<Napi::Array>();
  if (array.Length() > max) {
    return Throw(info.Env(), "at most " + std::to_string(max) + " fds per message", true);
  }
  fds->clear();
  for (uint32_t i = 0; i < array.Length(); i++) {
    uint64_t fd = 0;
    Napi::Value element = array.Get(i);
    if (info.Env().IsExceptionPending()) return false;
    if (!IsUint(element, INT32_MAX, &fd)) return Throw(info.Env(), "fds must be integers >= 0", false);
    fds->push_back(static_cast<int>(fd));
  }
  return true;
}

bool CheckRange(const Napi::Env& env, uint64_t offset, uint64_t length, size_t bufferLength) {
  if (offset > bufferLength || length > bufferLength - offset) {
    return Throw(env,
                 "range [" + std::to_string(offset) + ", +" + std::to_string(length) + ") exceeds the buffer (" +
                     std::to_string(bufferLength) + " bytes)",
                 true);
  }
  return true;
}

}  // namespace nvmig
