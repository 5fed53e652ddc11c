// Giving memory back to the system when the daemon goes idle. A long transcription leaves the
// C heap grown (the addon's scratch, ONNX Runtime's buffers): glibc keeps freed pages in its
// arenas, so an always-on daemon would hold the peak of its busiest hour. `trimMemory` asks the
// allocator to return them.
#include <napi.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "modules.h"

namespace wx {
namespace {

// trimMemory() → whether the allocator returned any memory to the system (false where it cannot
// tell or has nothing to trim).
Napi::Value JsTrimMemory(const Napi::CallbackInfo& info) {
#if defined(__GLIBC__)
  return Napi::Boolean::New(info.Env(), malloc_trim(0) != 0);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void RegisterMemory(Napi::Env env, Napi::Object exports) {
  exports.Set("trimMemory", Napi::Function::New(env, JsTrimMemory, "trimMemory"));
}
}  // namespace wx
