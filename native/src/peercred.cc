// Credentials of the process at the other end of a connected Unix socket, so the daemon can
// refuse clients of other users. Linux: SO_PEERCRED; macOS/BSD: getpeereid + LOCAL_PEERPID.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#if defined(__APPLE__)
#include <sys/un.h>
#endif

#include "modules.h"

namespace wx {
namespace {

Napi::Value PeerCredentials(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "peerCredentials(fd: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  const int fd = info[0].As<Napi::Number>().Int32Value();
  Napi::Object out = Napi::Object::New(env);
#if defined(__linux__)
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    Napi::Error::New(env, std::string("SO_PEERCRED failed: ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Null();
  }
  out.Set("uid", Napi::Number::New(env, cred.uid));
  out.Set("gid", Napi::Number::New(env, cred.gid));
  out.Set("pid", Napi::Number::New(env, cred.pid));
#elif defined(__APPLE__)
  uid_t uid;
  gid_t gid;
  if (getpeereid(fd, &uid, &gid) != 0) {
    Napi::Error::New(env, std::string("getpeereid failed: ") + std::strerror(errno)).ThrowAsJavaScriptException();
    return env.Null();
  }
  out.Set("uid", Napi::Number::New(env, uid));
  out.Set("gid", Napi::Number::New(env, gid));
  pid_t pid = 0;
  socklen_t len = sizeof(pid);
  if (getsockopt(fd, SOL_LOCAL, LOCAL_PEERPID, &pid, &len) == 0) out.Set("pid", Napi::Number::New(env, pid));
#else
  Napi::Error::New(env, "peer credentials are not supported on this platform").ThrowAsJavaScriptException();
  return env.Null();
#endif
  return out;
}

}  // namespace

void RegisterPeerCred(Napi::Env env, Napi::Object exports) {
  exports.Set("peerCredentials", Napi::Function::New(env, PeerCredentials, "peerCredentials"));
}

}  // namespace wx
