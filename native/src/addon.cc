// Entry point of the wx native addon: each module registers its functions here.
#include <napi.h>

#include "modules.h"

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("abiVersion", Napi::Number::New(env, 1));
  wx::RegisterAll(env, exports);
  return exports;
}

NODE_API_MODULE(wx_native, Init)
