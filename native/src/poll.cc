// Readiness watches: a uv_poll_t on Node's own event loop per watched fd, so a socket or an
// eventfd wakes JavaScript without threads.
//
// Lifetime: watch() returns an integer id (never a pointer), so a stale or repeated unwatch()
// is a harmless no-op. unwatch() drops the JavaScript callback at once and uv_close()es the
// handle; the record is freed in the close callback, after libuv has let go of it.
// When the environment (process or worker) ends, an async cleanup hook closes the watches left
// open and reports done only after the last close callback has run: a worker unloads this
// library after its cleanup, and a close callback left for later would jump into unmapped code.
//
// Rules for callers: one watch per fd (libuv polls an fd once); unwatch before closing the fd.
#include <uv.h>

#include <unordered_map>

#include "common.h"

namespace nvmig {

namespace {

struct WatchSet;

struct Watch {
  uv_poll_t poll;
  napi_env env;
  WatchSet* set;
  Napi::FunctionReference callback;
  napi_async_context asyncContext;
  int events;
};

struct WatchSet {
  uv_loop_t* loop = nullptr;
  uint32_t nextId = 1;
  std::unordered_map<uint32_t, Watch*> watches;  // open watches by id
  size_t handles = 0;                            // Watch records not yet freed (open or closing)
  napi_async_cleanup_hook_handle cleanup = nullptr;
  bool tearingDown = false;
};

// Events as JavaScript sees them: bit 0 readable, bit 1 writable (libuv's values).
constexpr int kReadable = UV_READABLE;
constexpr int kWritable = UV_WRITABLE;

WatchSet* GetSet(napi_env env) {
  void* data = nullptr;
  napi_get_instance_data(env, &data);
  return static_cast<WatchSet*>(data);
}

// Frees the set once the environment is ending and no handle is left, then lets Node go on.
void FinishTeardownIfIdle(WatchSet* set) {
  if (!set->tearingDown || set->handles != 0) return;
  napi_async_cleanup_hook_handle cleanup = set->cleanup;
  delete set;
  napi_remove_async_cleanup_hook(cleanup);
}

void OnClosed(uv_handle_t* handle) {
  Watch* watch = static_cast<Watch*>(handle->data);
  WatchSet* set = watch->set;
  delete watch;
  set->handles--;
  FinishTeardownIfIdle(set);
}

// Drops the JavaScript side now and closes the handle; the record dies in OnClosed.
void CloseWatch(Watch* watch) {
  if (watch->asyncContext != nullptr) {
    napi_async_destroy(watch->env, watch->asyncContext);
    watch->asyncContext = nullptr;
  }
  watch->callback.Reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&watch->poll), OnClosed);
}

void OnPoll(uv_poll_t* handle, int status, int events) {
  Watch* watch = static_cast<Watch*>(handle->data);
  if (watch->callback.IsEmpty()) return;
  napi_env env = watch->env;
  Napi::HandleScope scope(env);
  napi_value args[2];
  napi_create_int32(env, events & (kReadable | kWritable), &args[0]);
  napi_create_int32(env, status, &args[1]);  // 0, or a negative libuv error (then libuv stopped polling)
  napi_value global = nullptr;
  napi_get_global(env, &global);
  napi_value result = nullptr;
  napi_status callStatus =
      napi_make_callback(env, watch->asyncContext, global, watch->callback.Value(), 2, args, &result);
  if (callStatus == napi_pending_exception) {
    napi_value error = nullptr;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);  // -> process 'uncaughtException', as for any event callback
  }
}

int StartOrStop(Watch* watch, int events) {
  watch->events = events;
  if (events == 0) return uv_poll_stop(&watch->poll);
  return uv_poll_start(&watch->poll, events, OnPoll);
}

bool ArgEvents(const Napi::CallbackInfo& info, size_t index, int* events) {
  uint64_t value = 0;
  if (!ArgUint(info, index, kReadable | kWritable, &value, "events")) return false;
  *events = static_cast<int>(value);
  return true;
}

Watch* FindWatch(const Napi::CallbackInfo& info, uint32_t* id) {
  uint64_t value = 0;
  if (!ArgUint(info, 0, UINT32_MAX, &value, "watch id")) return nullptr;
  *id = static_cast<uint32_t>(value);
  WatchSet* set = GetSet(info.Env());
  auto found = set->watches.find(*id);
  return found == set->watches.end() ? nullptr : found->second;
}

// watch(fd, events, callback(events, status)) -> id (>= 1) | -errno. events: bit 0 readable,
// bit 1 writable, 0 = registered but paused. Level-triggered: the callback fires on every
// loop turn while the condition holds.
Napi::Value WatchFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = -1;
  int events = 0;
  if (!ArgFd(info, 0, &fd) || !ArgEvents(info, 1, &events)) return env.Undefined();
  if (!info[2].IsFunction()) {
    Napi::TypeError::New(env, "callback must be a function").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  WatchSet* set = GetSet(env);
  Watch* watch = new Watch();
  watch->env = env;
  watch->set = set;
  watch->asyncContext = nullptr;
  watch->events = 0;
  int rc = uv_poll_init(set->loop, &watch->poll, fd);
  if (rc != 0) {
    delete watch;
    return Napi::Number::New(env, rc);  // libuv errors are -errno on Unix
  }
  set->handles++;
  watch->poll.data = watch;
  watch->callback = Napi::Persistent(info[2].As<Napi::Function>());
  napi_async_init(env, Napi::Object::New(env), Napi::String::New(env, "nvmig.watch"), &watch->asyncContext);
  rc = StartOrStop(watch, events);
  if (rc != 0) {
    CloseWatch(watch);
    return Napi::Number::New(env, rc);
  }
  uint32_t id = set->nextId++;
  if (set->nextId == 0) set->nextId = 1;
  set->watches[id] = watch;
  return Napi::Number::New(env, id);
}

// watchUpdate(id, events) -> 0 | -errno; -ENOENT for an unknown id. Restarts polling even when
// events did not change (libuv stops a watch after reporting an error status).
Napi::Value WatchUpdate(const Napi::CallbackInfo& info) {
  uint32_t id = 0;
  int events = 0;
  Watch* watch = FindWatch(info, &id);
  if (info.Env().IsExceptionPending() || !ArgEvents(info, 1, &events)) return info.Env().Undefined();
  if (watch == nullptr) return NegErrno(info.Env(), ENOENT);
  return Napi::Number::New(info.Env(), StartOrStop(watch, events));
}

// watchRef(id, ref) -> 0 | -ENOENT. An unref'd watch does not keep the process alive.
Napi::Value WatchRef(const Napi::CallbackInfo& info) {
  uint32_t id = 0;
  bool ref = true;
  Watch* watch = FindWatch(info, &id);
  if (info.Env().IsExceptionPending() || !ArgBool(info, 1, &ref, "ref")) return info.Env().Undefined();
  if (watch == nullptr) return NegErrno(info.Env(), ENOENT);
  if (ref) {
    uv_ref(reinterpret_cast<uv_handle_t*>(&watch->poll));
  } else {
    uv_unref(reinterpret_cast<uv_handle_t*>(&watch->poll));
  }
  return Napi::Number::New(info.Env(), 0);
}

// unwatch(id) -> true if this call ended the watch, false if it was already gone. Safe inside
// the watch's own callback.
Napi::Value Unwatch(const Napi::CallbackInfo& info) {
  uint32_t id = 0;
  Watch* watch = FindWatch(info, &id);
  if (info.Env().IsExceptionPending()) return info.Env().Undefined();
  if (watch == nullptr) return Napi::Boolean::New(info.Env(), false);
  GetSet(info.Env())->watches.erase(id);
  CloseWatch(watch);
  return Napi::Boolean::New(info.Env(), true);
}

// watchCount() -> open watches of this environment (for leak tests).
Napi::Value WatchCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(GetSet(info.Env())->watches.size()));
}

void CleanupWatches(napi_async_cleanup_hook_handle handle, void* data) {
  WatchSet* set = static_cast<WatchSet*>(data);
  set->cleanup = handle;
  set->tearingDown = true;
  for (auto& entry : set->watches) CloseWatch(entry.second);
  set->watches.clear();
  FinishTeardownIfIdle(set);  // else the last OnClosed finishes it
}

}  // namespace

void InitPoll(Napi::Env env, Napi::Object exports) {
  WatchSet* set = new WatchSet();
  napi_get_uv_event_loop(env, &set->loop);
  napi_set_instance_data(env, set, nullptr, nullptr);
  napi_add_async_cleanup_hook(env, CleanupWatches, set, nullptr);
  exports.Set("watch", Napi::Function::New(env, WatchFd, "watch"));
  exports.Set("watchUpdate", Napi::Function::New(env, WatchUpdate, "watchUpdate"));
  exports.Set("watchRef", Napi::Function::New(env, WatchRef, "watchRef"));
  exports.Set("unwatch", Napi::Function::New(env, Unwatch, "unwatch"));
  exports.Set("watchCount", Napi::Function::New(env, WatchCount, "watchCount"));
  exports.Set("WATCH_READABLE", Napi::Number::New(env, kReadable));
  exports.Set("WATCH_WRITABLE", Napi::Number::New(env, kWritable));
}

}  // namespace nvmig
