// Byte streams with fds attached (SCM_RIGHTS): recvmsg and sendmsg on AF_UNIX stream sockets.
//
// Linux attaches the fds of one sendmsg to the first byte of that send, hands them out with
// the first recvmsg that consumes any of those bytes, and ends a recvmsg right after a chunk
// that carried fds. A reader that reads a message's header first and then exactly its payload
// therefore gets the fds of that message with its header, never with a neighbour.
//
// Both calls are non-blocking (MSG_DONTWAIT) whatever the fd's O_NONBLOCK flag says.
#include <limits.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common.h"

namespace nvmig {

namespace {

// Control buffer large enough for kMaxFdsPerMessage fds, aligned for cmsghdr.
union ControlBuffer {
  char bytes[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  cmsghdr align;
};

Napi::Object RecvResult(Napi::Env env, double bytes, int err, const std::vector<int>& fds, bool eof, bool ctrunc) {
  Napi::Object result = Napi::Object::New(env);
  result.Set("bytes", Napi::Number::New(env, bytes));
  Napi::Array fdArray = Napi::Array::New(env, fds.size());
  for (uint32_t i = 0; i < fds.size(); i++) fdArray.Set(i, Napi::Number::New(env, fds[i]));
  result.Set("fds", fdArray);
  result.Set("eof", Napi::Boolean::New(env, eof));
  result.Set("ctrunc", Napi::Boolean::New(env, ctrunc));
  if (err != 0) result.Set("errno", Napi::Number::New(env, err));
  return result;
}

// recvmsg(fd, buffer, offset, length, maxFds)
//   -> { bytes, fds, eof, ctrunc }            bytes > 0, or 0 with eof at end of stream
//    | { bytes: -1, errno, fds: [], ... }     EAGAIN (nothing to read), ECONNRESET, ...
// Received fds are close-on-exec (MSG_CMSG_CLOEXEC) and owned by the caller, also when ctrunc
// reports that more fds were sent than maxFds allowed (the kernel closed the surplus).
Napi::Value Recvmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  uint8_t* data = nullptr;
  size_t bufferLength = 0;
  uint64_t offset = 0, length = 0, maxFds = 0;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &bufferLength) ||
      !ArgUint(info, 2, SIZE_MAX, &offset, "offset") || !ArgUint(info, 3, SIZE_MAX, &length, "length") ||
      !ArgUint(info, 4, kMaxFdsPerMessage, &maxFds, "maxFds") || !CheckRange(env, offset, length, bufferLength)) {
    return env.Undefined();
  }
  if (length == 0) {
    Napi::RangeError::New(env, "length must be >= 1 (a 0-byte read cannot tell end of stream)")
        .ThrowAsJavaScriptException();
    return env.Undefined();
  }
  iovec iov;
  iov.iov_base = data + offset;
  iov.iov_len = length;
  ControlBuffer control;
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (maxFds > 0) {
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * maxFds);
  }
  ssize_t n;
  do {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  std::vector<int> fds;
  if (n < 0) return RecvResult(env, -1, errno == EWOULDBLOCK ? EAGAIN : errno, fds, false, false);
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* cursor = CMSG_DATA(cmsg);
    for (size_t i = 0; i < count; i++) {
      int received;
      std::memcpy(&received, cursor + i * sizeof(int), sizeof(int));
      fds.push_back(received);
    }
  }
  return RecvResult(env, static_cast<double>(n), 0, fds, n == 0, (msg.msg_flags & MSG_CTRUNC) != 0);
}

// Sends iov[0..count) with fds attached to the first byte. -> bytes written | -errno.
Napi::Value SendIov(Napi::Env env, int fd, iovec* iov, size_t count, const std::vector<int>& fds) {
  ControlBuffer control;
  msghdr msg;
  std::memset(&msg, 0, sizeof(msg));
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  if (!fds.empty()) {
    size_t total = 0;
    for (size_t i = 0; i < count; i++) total += iov[i].iov_len;
    if (total == 0) {
      Napi::RangeError::New(env, "fds need at least one byte to travel with").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    std::memset(control.bytes, 0, sizeof(control.bytes));
    msg.msg_control = control.bytes;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return NegErrno(env, errno == EWOULDBLOCK ? EAGAIN : errno);
  return Napi::Number::New(env, static_cast<double>(n));
}

// sendmsg(fd, buffer, offset, length, fds) -> bytes written (may be short) | -errno.
// When the result is > 0 the fds went with the first byte; when it is -errno they did not.
Napi::Value Sendmsg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  uint8_t* data = nullptr;
  size_t bufferLength = 0;
  uint64_t offset = 0, length = 0;
  std::vector<int> fds;
  if (!ArgFd(info, 0, &fd) || !ArgBytes(info, 1, &data, &bufferLength) ||
      !ArgUint(info, 2, SIZE_MAX, &offset, "offset") || !ArgUint(info, 3, SIZE_MAX, &length, "length") ||
      !ArgFdArray(info, 4, kMaxFdsPerMessage, &fds) || !CheckRange(env, offset, length, bufferLength)) {
    return env.Undefined();
  }
  iovec iov;
  iov.iov_base = data + offset;
  iov.iov_len = length;
  return SendIov(env, fd, &iov, 1, fds);
}

// sendmsgv(fd, buffers[], fds) -> bytes written (may be short) | -errno. Gathers the buffers
// (whole TypedArrays) into one sendmsg, fds on the first byte.
Napi::Value Sendmsgv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  std::vector<int> fds;
  if (!ArgFd(info, 0, &fd) || !ArgFdArray(info, 2, kMaxFdsPerMessage, &fds)) return env.Undefined();
  if (!info[1].IsArray()) {
    Napi::TypeError::New(env, "buffers must be an array of TypedArrays").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Array buffers = info[1].As<Napi::Array>();
  if (buffers.Length() == 0 || buffers.Length() > IOV_MAX) {
    Napi::RangeError::New(env, "buffers must hold 1 to IOV_MAX entries").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::vector<iovec> iov(buffers.Length());
  for (uint32_t i = 0; i < buffers.Length(); i++) {
    Napi::Value element = buffers.Get(i);
    if (!element.IsTypedArray()) {
      Napi::TypeError::New(env, "buffers must be an array of TypedArrays").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    Napi::TypedArray array = element.As<Napi::TypedArray>();
    iov[i].iov_base = static_cast<uint8_t*>(array.ArrayBuffer().Data()) + array.ByteOffset();
    iov[i].iov_len = array.ByteLength();
  }
  return SendIov(env, fd, iov.data(), iov.size(), fds);
}

}  // namespace

void InitFdpass(Napi::Env env, Napi::Object exports) {
  exports.Set("recvmsg", Napi::Function::New(env, Recvmsg, "recvmsg"));
  exports.Set("sendmsg", Napi::Function::New(env, Sendmsg, "sendmsg"));
  exports.Set("sendmsgv", Napi::Function::New(env, Sendmsgv, "sendmsgv"));
  exports.Set("maxFdsPerMessage", Napi::Number::New(env, static_cast<double>(kMaxFdsPerMessage)));
}

}  // namespace nvmig
