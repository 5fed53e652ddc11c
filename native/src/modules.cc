#include "modules.h"

namespace wx {
void RegisterAll(Napi::Env, Napi::Object) {}
}
