// Module entry of nvmig_native: registers each concept's functions (one source file per concept).
#include "common.h"

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  nvmig::InitEventfd(env, exports);
  nvmig::InitFd(env, exports);
  nvmig::InitFdpass(env, exports);
  nvmig::InitMmap(env, exports);
  nvmig::InitPoll(env, exports);
  nvmig::InitSocket(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(nvmig_native, Init)
