#include "modules.h"

namespace wx {
void RegisterAll(Napi::Env env, Napi::Object exports) {
  RegisterPeerCred(env, exports);
  RegisterAudioWav(env, exports);
  RegisterAudioMel(env, exports);
  RegisterAudioStream(env, exports);
  RegisterLogits(env, exports);
  RegisterCrossAttention(env, exports);
  RegisterInt8Linear(env, exports);
  RegisterMachineLimits(env, exports);
  RegisterMemory(env, exports);
}
}  // namespace wx
