// Registration hooks of the addon's modules (one per source file).
#pragma once
#include <napi.h>

namespace wx {
void RegisterAll(Napi::Env env, Napi::Object exports);

void RegisterPeerCred(Napi::Env env, Napi::Object exports);
void RegisterAudioWav(Napi::Env env, Napi::Object exports);
void RegisterAudioMel(Napi::Env env, Napi::Object exports);
void RegisterAudioStream(Napi::Env env, Napi::Object exports);
void RegisterLogits(Napi::Env env, Napi::Object exports);
void RegisterCrossAttention(Napi::Env env, Napi::Object exports);
void RegisterInt8Linear(Napi::Env env, Napi::Object exports);
void RegisterMachineLimits(Napi::Env env, Napi::Object exports);
void RegisterMemory(Napi::Env env, Napi::Object exports);
}  // namespace wx
