// Shared memory: memfd_create, ftruncate, and mmap as an external ArrayBuffer with an explicit,
// idempotent munmap.
//
// Lifetime rule (the double-munmap bug of the prototype): a mapping can end twice, by munmap()
// from JavaScript and by the GC finalizer of its ArrayBuffer. If both called munmap(2), the
// second call could hit a newer mapping that reuses the address. So every ArrayBuffer owns one
// Mapping record; whoever ends the mapping first flips `mapped` under the lock and only that
// one calls munmap(2). The finalizer always deletes the record, and never unmaps twice.
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <unordered_map>

#include "common.h"

namespace nvmig {

namespace {

// Largest mapping one ArrayBuffer can view in Node 20 (buffer.constants.MAX_LENGTH, 4 GiB):
// larger guest memory must be mapped as windows.
constexpr uint64_t kMaxMappingBytes = 4ull << 30;

struct Mapping {
  void* address;
  size_t length;
  bool mapped;
};

// Process-wide (worker threads included) and never destroyed, so a finalizer that runs during
// teardown still finds it.
struct Registry {
  std::mutex mutex;
  std::unordered_map<uintptr_t, Mapping*> live;  // address -> record, only while mapped
  size_t records = 0;                              // records not yet finalized (mapped or not)
};

Registry& registry() {
  static Registry* instance = new Registry();
  return *instance;
}

// Ends the mapping if it is still mapped. Caller holds the lock.
void UnmapLocked(Registry& reg, Mapping* mapping) {
  if (!mapping->mapped) return;
  mapping->mapped = false;
  reg.live.erase(reinterpret_cast<uintptr_t>(mapping->address));
  ::munmap(mapping->address, mapping->length);
}

void FinalizeMapping(napi_env /*env*/, void* /*data*/, void* hint) {
  Mapping* mapping = static_cast<Mapping*>(hint);
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  UnmapLocked(reg, mapping);
  reg.records--;
  delete mapping;
}

// memfdCreate(name) -> fd (close-on-exec, sealing allowed) | -errno.
Napi::Value MemfdCreate(const Napi::CallbackInfo& info) {
  std::string name;
  if (!ArgString(info, 0, &name, "name")) return info.Env().Undefined();
  int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), fd);
}

// ftruncate(fd, bytes) -> 0 | -errno.
Napi::Value Ftruncate(const Napi::CallbackInfo& info) {
  int fd = -1;
  uint64_t bytes = 0;
  if (!ArgFd(info, 0, &fd) || !ArgUint(info, 1, INT64_MAX, &bytes, "bytes")) return info.Env().Undefined();
  int rc;
  do {
    rc = ::ftruncate(fd, static_cast<off_t>(bytes));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) return NegErrno(info.Env(), errno);
  return Napi::Number::New(info.Env(), 0);
}

// mmap(fd, lengthBytes, offsetBytes, writable) -> ArrayBuffer | -errno. MAP_SHARED; offset must
// be a multiple of the page size (EINVAL otherwise). length in [1, 4 GiB].
Napi::Value Mmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  uint64_t length = 0, offset = 0;
  bool writable = false;
  if (!ArgFd(info, 0, &fd) || !ArgUint(info, 1, kMaxMappingBytes, &length, "lengthBytes") ||
      !ArgUint(info, 2, INT64_MAX, &offset, "offsetBytes") || !ArgBool(info, 3, &writable, "writable")) {
    return env.Undefined();
  }
  if (length == 0) {
    Napi::RangeError::New(env, "lengthBytes must be >= 1").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void* address = ::mmap(nullptr, length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (address == MAP_FAILED) return NegErrno(env, errno);
  Mapping* mapping = new Mapping{address, static_cast<size_t>(length), true};
  Registry& reg = registry();
  {
    std::lock_guard<std::mutex> lock(reg.mutex);
    reg.live[reinterpret_cast<uintptr_t>(address)] = mapping;
    reg.records++;
  }
  napi_value buffer = nullptr;
  napi_status status = napi_create_external_arraybuffer(env, address, length, FinalizeMapping, mapping, &buffer);
  if (status != napi_ok) {
    FinalizeMapping(env, nullptr, mapping);  // not handed to JavaScript: end it here
    Napi::Error::New(env, "napi_create_external_arraybuffer failed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  return Napi::Value(env, buffer);
}

// munmap(arrayBuffer) -> true if this call ended the mapping, false if it was not a live
// mapping (already unmapped, detached, or not made by mmap()). Detaches the ArrayBuffer, so every
// view of it reads as length 0 from now on.
Napi::Value Munmap(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArrayBuffer()) {
    Napi::TypeError::New(env, "munmap expects an ArrayBuffer returned by mmap").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.IsDetached() || buffer.Data() == nullptr) return Napi::Boolean::New(env, false);
  Registry& reg = registry();
  {
    std::lock_guard<std::mutex> lock(reg.mutex);
    auto found = reg.live.find(reinterpret_cast<uintptr_t>(buffer.Data()));
    if (found == reg.live.end() || found->second->length != buffer.ByteLength()) {
      return Napi::Boolean::New(env, false);
    }
    UnmapLocked(reg, found->second);
  }
  // The record stays until the finalizer runs; it will see mapped == false.
  buffer.Detach();
  return Napi::Boolean::New(env, true);
}

// mmapStats() -> { liveMappings, records }: mappings still mapped, and records whose ArrayBuffer
// has not been finalized yet (for leak tests).
Napi::Value MmapStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mutex);
  Napi::Object stats = Napi::Object::New(env);
  stats.Set("liveMappings", Napi::Number::New(env, static_cast<double>(reg.live.size())));
  stats.Set("records", Napi::Number::New(env, static_cast<double>(reg.records)));
  return stats;
}

}  // namespace

void InitMmap(Napi::Env env, Napi::Object exports) {
  exports.Set("memfdCreate", Napi::Function::New(env, MemfdCreate, "memfdCreate"));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate, "ftruncate"));
  exports.Set("mmap", Napi::Function::New(env, Mmap, "mmap"));
  exports.Set("munmap", Napi::Function::New(env, Munmap, "munmap"));
  exports.Set("mmapStats", Napi::Function::New(env, MmapStats, "mmapStats"));
  exports.Set("pageSize", Napi::Number::New(env, static_cast<double>(::sysconf(_SC_PAGESIZE))));
  exports.Set("maxMappingBytes", Napi::Number::New(env, static_cast<double>(kMaxMappingBytes)));
}

}  // namespace nvmig
