// Plain fd operations: close, dup (close-on-exec), switching O_NONBLOCK.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "common.h"

namespace nvmig {

namespace {

// close(fd) -> 0 | -errno. EINTR counts as closed (Linux releases the fd before reporting it).
Napi::Value Close(const Napi::CallbackInfo& info) {
  int fd = -1;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  if (::close(fd) != 0 && errno != EINTR) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// dup(fd) -> new fd (close-on-exec) | -errno.
Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = -1;
  if (!ArgFd(info, 0, &fd)) return info.Env().Undefined();
  int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), copy);
}

// setNonBlocking(fd, on) -> 0 | -errno.
Napi::Value SetNonBlocking(const Napi::CallbackInfo& info) {
  int fd = -1;
  bool on = false;
  if (!ArgFd(info, 0, &fd) || !ArgBool(info, 1, &on, "on")) return info.Env().Undefined();
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return NegErrno(info.Env(), errno);
  int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
  if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) != 0) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports.Set("close", Napi::Function::New(env, Close, "close"));
  exports.Set("dup", Napi::Function::New(env, Dup, "dup"));
  exports.Set("setNonBlocking", Napi::Function::New(env, SetNonBlocking, "setNonBlocking"));
}

}  // namespace nvmig
