// Shared helpers of the nvmig native addon.
//
// Conventions of every function exported to JavaScript:
// - A failed system call is a value, never an exception: functions that return a number return
//   -errno (negative), functions that return an object carry an `errno` field. The TypeScript
//   wrapper (src/native/addon.ts) turns the ones that are not expected at run time into NativeError.
// - A wrong argument (type, range) is our own bug: it throws a JavaScript TypeError/RangeError.
// - No threads: everything runs on Node's event-loop thread.
#pragma once

#include <napi.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace nvmig {

// Largest count of fds one SCM_RIGHTS message may carry on Linux (SCM_MAX_FD).
constexpr size_t kMaxFdsPerMessage = 253;

// Argument readers: each returns false after throwing a JavaScript exception.
bool ArgFd(const Napi::CallbackInfo& info, size_t index, int* fd);
bool ArgUint(const Napi::CallbackInfo& info, size_t index, uint64_t max, uint64_t* out, const char* name);
bool ArgBool(const Napi::CallbackInfo& info, size_t index, bool* out, const char* name);
bool ArgString(const Napi::CallbackInfo& info, size_t index, std::string* out, const char* name);
// A Uint8Array/Buffer/any TypedArray or an ArrayBuffer: the bytes it views.
bool ArgBytes(const Napi::CallbackInfo& info, size_t index, uint8_t** data, size_t* length);
// An array of fds (non-negative int32), at most `max` entries.
bool ArgFdArray(const Napi::CallbackInfo& info, size_t index, size_t max, std::vector<int>* fds);
// A byte range [offset, offset+length) inside a buffer of bufferLength bytes.
bool CheckRange(const Napi::Env& env, uint64_t offset, uint64_t length, size_t bufferLength);

// -errno as a JavaScript number.
inline Napi::Value NegErrno(Napi::Env env, int err) { return Napi::Number::New(env, -static_cast<double>(err)); }

// Registration of each concept's functions on the module's exports.
void InitEventfd(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitFdpass(Napi::Env env, Napi::Object exports);
void InitMmap(Napi::Env env, Napi::Object exports);
void InitPoll(Napi::Env env, Napi::Object exports);
void InitSocket(Napi::Env env, Napi::Object exports);

}  // namespace nvmig
