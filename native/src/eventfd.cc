// eventfd: the doorbell/interrupt primitive of vfio-user (SET_IRQS passes eventfds).
// Every eventfd made here is close-on-exec and non-blocking.
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace nvmig {

namespace {

// eventfd(initial, flags) -> fd | -errno. flags: 0 or EFD_SEMAPHORE (exported as a constant).
Napi::Value Eventfd(const Napi::CallbackInfo& info) {
  uint64_t initial = 0, flags = 0;
  if (!ArgUint(info, 0, UINT32_MAX, &initial, "initial") || !ArgUint(info, 1, EFD_SEMAPHORE, &flags, "flags")) {
    return info.Env().Undefined();
  }
  if ((flags & ~static_cast<uint64_t>(EFD_SEMAPHORE)) != 0) {
    Napi::RangeError::New(info.Env(), "flags may only hold EFD_SEMAPHORE").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  int fd = ::eventfd(static_cast<unsigned>(initial), static_cast<int>(flags) | EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), fd);
}

// eventfdWrite(fd, value: bigint) -> 0 | -errno (-EAGAIN: the counter would overflow).
// value in [1, 2^64 - 2]. Works on any eventfd, blocking or not (it never blocks here).
Napi::Value EventfdWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  if (!info[1].IsBigInt()) {
    Napi::TypeError::New(env, "value must be a bigint").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  bool lossless = false;
  uint64_t value = info[1].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || value == 0 || value == UINT64_MAX) {
    Napi::RangeError::New(env, "value must be in [1, 2^64 - 2]").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  ssize_t n;
  do {
    n = ::write(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return NegErrno(env, errno == EWOULDBLOCK ? EAGAIN : errno);
  if (n != sizeof(value)) return NegErrno(env, EIO);
  return Napi::Number::New(env, 0);
}

// eventfdRead(fd) -> bigint counter (or 1 in semaphore mode) | -errno (-EAGAIN: counter is 0).
// Only for non-blocking eventfds (a blocking one would stall the event loop).
Napi::Value EventfdRead(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  if (!ArgFd(info, 0, &fd)) return env.Undefined();
  uint64_t value = 0;
  ssize_t n;
  do {
    n = ::read(fd, &value, sizeof(value));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return NegErrno(env, errno == EWOULDBLOCK ? EAGAIN : errno);
  if (n != sizeof(value)) return NegErrno(env, EIO);
  return Napi::BigInt::New(env, value);
}

}  // namespace

void InitEventfd(Napi::Env env, Napi::Object exports) {
  exports.Set("eventfd", Napi::Function::New(env, Eventfd, "eventfd"));
  exports.Set("eventfdWrite", Napi::Function::New(env, EventfdWrite, "eventfdWrite"));
  exports.Set("eventfdRead", Napi::Function::New(env, EventfdRead, "eventfdRead"));
  exports.Set("EFD_SEMAPHORE", Napi::Number::New(env, EFD_SEMAPHORE));
}

}  // namespace nvmig
