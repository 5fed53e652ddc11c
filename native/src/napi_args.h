// Argument checks shared by the addon's compute kernels' bindings.
#pragma once
#include <napi.h>

namespace wx {

inline bool IsArray(const Napi::Value& v, napi_typedarray_type type) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == type;
}

inline int Int(const Napi::Value& v) { return v.As<Napi::Number>().Int32Value(); }

}  // namespace wx
