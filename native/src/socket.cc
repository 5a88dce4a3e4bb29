// AF_UNIX stream sockets: socketpair, listen, accept, connect. Every fd returned is
// close-on-exec and non-blocking.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <string>

#include "common.h"

namespace nvmig {

namespace {

// Fills a sockaddr_un; a path starting with NUL names the abstract namespace.
int MakeAddress(const std::string& path, sockaddr_un* address, socklen_t* length) {
  std::memset(address, 0, sizeof(*address));
  address->sun_family = AF_UNIX;
  if (path.empty()) return EINVAL;
  bool abstract = path[0] == '\0';
  // A filesystem path needs room for its terminating NUL; an abstract name does not.
  if (path.size() > sizeof(address->sun_path) - (abstract ? 0 : 1)) return ENAMETOOLONG;
  std::memcpy(address->sun_path, path.data(), path.size());
  *length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  return 0;
}

// socketpair() -> [fdA, fdB] | -errno.
Napi::Value Socketpair(const Napi::CallbackInfo& info) {
  int fds[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
    return NegErrno(info.Env(), errno);
  }
  Napi::Array pair = Napi::Array::New(info.Env(), 2);
  pair.Set(0u, Napi::Number::New(info.Env(), fds[0]));
  pair.Set(1u, Napi::Number::New(info.Env(), fds[1]));
  return pair;
}

// listenUnix(path, backlog) -> listening fd | -errno. Does not remove an existing file.
Napi::Value ListenUnix(const Napi::CallbackInfo& info) {
  std::string path;
  uint64_t backlog = 0;
  if (!ArgString(info, 0, &path, "path") || !ArgUint(info, 1, 65535, &backlog, "backlog")) {
    return info.Env().Undefined();
  }
  sockaddr_un address;
  socklen_t length = 0;
  int err = MakeAddress(path, &address, &length);
  if (err != 0) return NegErrno(info.Env(), err);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return NegErrno(info.Env(), errno);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(fd, static_cast<int>(backlog)) != 0) {
    err = errno;
    ::close(fd);
    return NegErrno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

// acceptUnix(listenFd) -> connected fd | -errno (-EAGAIN when no connection is waiting).
Napi::Value AcceptUnix(const Napi::CallbackInfo& info) {
  int listenFd = -1;
  if (!ArgFd(info, 0, &listenFd)) return info.Env().Undefined();
  int fd;
  do {
    fd = ::accept4(listenFd, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return NegErrno(info.Env(), errno == EWOULDBLOCK ? EAGAIN : errno);
  return Napi::Number::New(info.Env(), fd);
}

// connectUnix(path) -> connected non-blocking fd | -errno. The connect itself blocks (a UNIX
// socket connects at once unless the listener's backlog is full).
Napi::Value ConnectUnix(const Napi::CallbackInfo& info) {
  std::string path;
  if (!ArgString(info, 0, &path, "path")) return info.Env().Undefined();
  sockaddr_un address;
  socklen_t length = 0;
  int err = MakeAddress(path, &address, &length);
  if (err != 0) return NegErrno(info.Env(), err);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return NegErrno(info.Env(), errno);
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<sockaddr*>(&address), length);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0 && errno == EISCONN) rc = 0;  // an interrupted connect may have completed meanwhile
  int flags = rc == 0 ? ::fcntl(fd, F_GETFL) : -1;
  if (rc != 0 || flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    err = errno;
    ::close(fd);
    return NegErrno(info.Env(), err);
  }
  return Napi::Number::New(info.Env(), fd);
}

}  // namespace

void InitSocket(Napi::Env env, Napi::Object exports) {
  exports.Set("socketpair", Napi::Function::New(env, Socketpair, "socketpair"));
  exports.Set("listenUnix", Napi::Function::New(env, ListenUnix, "listenUnix"));
  exports.Set("acceptUnix", Napi::Function::New(env, AcceptUnix, "acceptUnix"));
  exports.Set("connectUnix", Napi::Function::New(env, ConnectUnix, "connectUnix"));
}

}  // namespace nvmig
