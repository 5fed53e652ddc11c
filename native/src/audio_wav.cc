// WAV decoding (PCM 8/16/24/32-bit, float 32/64, A-law/µ-law, WAVE_FORMAT_EXTENSIBLE, RF64),
// downmix to mono and resampling, from memory or straight from a file.
//
// The header is never trusted for sizes: every length is checked against the bytes that are
// really there before anything is allocated, and file input is read block by block (pread), so
// a multi-gigabyte recording only costs its decoded 16 kHz output in memory.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

#include "audio_dsp.h"
#include "modules.h"

namespace wx {
namespace audio {
namespace {

constexpr int64_t kDecodeChunkFrames = 1 << 16;

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  virtual int64_t Size() const = 0;
  // Reads exactly len bytes at off (the caller guarantees off + len ≤ Size()).
  virtual void Read(int64_t off, size_t len, uint8_t* dst) const = 0;
};

class MemorySource : public ByteSource {
 public:
  MemorySource(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  int64_t Size() const override { return int64_t(size_); }
  void Read(int64_t off, size_t len, uint8_t* dst) const override { std::memcpy(dst, data_ + off, len); }

 private:
  const uint8_t* data_;
  size_t size_;
};

class FileSource : public ByteSource {
 public:
  explicit FileSource(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) Fail("open");
    struct stat st;
    if (::fstat(fd_, &st) != 0) Fail("stat");
    if (S_ISDIR(st.st_mode)) throw AudioFailure{"not_audio", "is a directory, not an audio file"};
    if (!S_ISREG(st.st_mode)) throw AudioFailure{"unsupported", "is not a regular file"};
    size_ = st.st_size;
  }
  ~FileSource() override {
    if (fd_ >= 0) ::close(fd_);
  }
  int64_t Size() const override { return size_; }
  void Read(int64_t off, size_t len, uint8_t* dst) const override {
    while (len > 0) {
      const ssize_t got = ::pread(fd_, dst, len, off);
      if (got < 0) {
        if (errno == EINTR) continue;
        Fail("read");
      }
      if (got == 0) throw AudioFailure{"truncated", "the file shrank while it was being read"};
      dst += got;
      off += got;
      len -= size_t(got);
    }
  }

 private:
  [[noreturn]] static void Fail(const char* what) {
    const int e = errno;
    if (e == ENOENT || e == ENOTDIR) throw AudioFailure{"not_found", "no such file"};
    throw AudioFailure{"unreadable", std::string(what) + " failed: " + std::strerror(e)};
  }
  int fd_ = -1;
  int64_t size_ = 0;
};

enum class Encoding { kPcmInt, kFloat, kALaw, kMuLaw };

struct WavInfo {
  Encoding encoding = Encoding::kPcmInt;
  int channels = 0;
  int64_t sampleRate = 0;
  int bytesPerSample = 0;  // container size of one sample of one channel
  int blockAlign = 0;
  int64_t dataOffset = 0;
  int64_t frames = 0;
};

inline uint16_t U16(const uint8_t* p) { return uint16_t(p[0] | (p[1] << 8)); }
inline uint32_t U32(const uint8_t* p) { return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24); }
inline uint64_t U64(const uint8_t* p) { return uint64_t(U32(p)) | (uint64_t(U32(p + 4)) << 32); }

std::string Bytes(int64_t n) {
  char buf[64];
  if (n >= (int64_t(1) << 30)) snprintf(buf, sizeof buf, "%.1f GB", double(n) / double(1 << 30));
  else if (n >= (1 << 20)) snprintf(buf, sizeof buf, "%.1f MB", double(n) / double(1 << 20));
  else if (n >= (1 << 10)) snprintf(buf, sizeof buf, "%.1f kB", double(n) / double(1 << 10));
  else snprintf(buf, sizeof buf, "%lld bytes", (long long)n);
  return buf;
}

bool IsWavMagic(const uint8_t* p, int64_t n) {
  return n >= 12 && (std::memcmp(p, "RIFF", 4) == 0 || std::memcmp(p, "RF64", 4) == 0) && std::memcmp(p + 8, "WAVE", 4) == 0;
}

WavInfo ParseWav(const ByteSource& src) {
  const int64_t size = src.Size();
  if (size == 0) throw AudioFailure{"empty", "the file is empty (0 bytes)"};
  uint8_t head[12] = {};
  src.Read(0, size_t(std::min<int64_t>(size, 12)), head);
  if (size < 12) {
    if (std::memcmp(head, "RIFF", size_t(std::min<int64_t>(size, 4))) == 0) {
      throw AudioFailure{"truncated", "WAV header cut off after " + Bytes(size)};
    }
    throw AudioFailure{"not_audio", "not a WAV file (no RIFF/WAVE header)"};
  }
  if (!IsWavMagic(head, size)) throw AudioFailure{"not_audio", "not a WAV file (no RIFF/WAVE header)"};
  const bool rf64 = std::memcmp(head, "RF64", 4) == 0;

  WavInfo info;
  bool haveFmt = false, haveData = false;
  uint16_t tag = 0;
  int bits = 0;
  uint64_t ds64Data = 0;
  int64_t dataBytes = 0;
  int64_t off = 12;
  while (off + 8 <= size && !(haveFmt && haveData)) {
    uint8_t ch[8];
    src.Read(off, 8, ch);
    const uint32_t csize = U32(ch + 4);
    const int64_t body = off + 8;
    if (std::memcmp(ch, "fmt ", 4) == 0) {
      if (csize < 16) throw AudioFailure{"not_audio", "corrupt WAV header (fmt chunk of " + std::to_string(csize) + " bytes)"};
      if (body + 16 > size) throw AudioFailure{"truncated", "WAV header cut off inside the fmt chunk"};
      uint8_t f[40] = {};
      src.Read(body, size_t(std::min<int64_t>({int64_t(csize), 40, size - body})), f);
      tag = U16(f);
      info.channels = U16(f + 2);
      info.sampleRate = U32(f + 4);
      info.blockAlign = U16(f + 12);
      bits = U16(f + 14);
      if (tag == 0xFFFE) {
        if (csize < 40 || body + 40 > size) throw AudioFailure{"truncated", "WAVE_FORMAT_EXTENSIBLE header cut off"};
        tag = U16(f + 24);  // the sub-format GUID starts with the plain format tag
      }
      haveFmt = true;
    } else if (std::memcmp(ch, "ds64", 4) == 0 && rf64) {
      if (csize < 28 || body + 28 > size) throw AudioFailure{"truncated", "RF64 header cut off inside the ds64 chunk"};
      uint8_t d[16];
      src.Read(body, 16, d);
      ds64Data = U64(d + 8);
    } else if (std::memcmp(ch, "data", 4) == 0) {
      info.dataOffset = body;
      const int64_t available = size - body;
      uint64_t declared = csize;
      if (rf64 && csize == 0xFFFFFFFFu && ds64Data) declared = ds64Data;
      if (declared == 0xFFFFFFFFu || declared == 0) {
        // Streamed WAV (the writer could not seek back to fill in the size): the data runs to
        // the end of the file.
        declared = uint64_t(available);
      } else if (declared > uint64_t(available)) {
        throw AudioFailure{"truncated", "WAV data chunk declares " + Bytes(int64_t(std::min<uint64_t>(declared, INT64_MAX))) +
                                            " but only " + Bytes(available) + " follow (truncated file or corrupt header)"};
      }
      dataBytes = int64_t(declared);
      haveData = true;
      if (haveFmt) break;
    }
    const int64_t next = body + int64_t(csize) + (csize & 1);
    if (std::memcmp(ch, "data", 4) == 0) {
      off = body + dataBytes + (dataBytes & 1);
    } else {
      off = next;
    }
  }
  if (!haveFmt || !haveData) {
    if (off >= size || off + 8 > size) {
      throw AudioFailure{"truncated", std::string("WAV file ends before its ") + (haveFmt ? "data chunk" : "fmt chunk")};
    }
    throw AudioFailure{"not_audio", std::string("corrupt WAV file (no ") + (haveFmt ? "data" : "fmt") + " chunk)"};
  }

  if (info.channels == 0) throw AudioFailure{"not_audio", "corrupt WAV header (0 channels)"};
  // Below 1 kHz it is not sound (and a bogus tiny rate would blow a small file up by 16 000×
  // when resampled to 16 kHz).
  if (info.sampleRate < 1000 || info.sampleRate > 10'000'000) {
    throw AudioFailure{"not_audio", "corrupt WAV header (sample rate " + std::to_string(info.sampleRate) + " Hz, expected 1 kHz – 10 MHz)"};
  }
  switch (tag) {
    case 1: info.encoding = Encoding::kPcmInt; break;
    case 3: info.encoding = Encoding::kFloat; break;
    case 6: info.encoding = Encoding::kALaw; break;
    case 7: info.encoding = Encoding::kMuLaw; break;
    default:
      throw AudioFailure{"unsupported", "WAV encoding 0x" + [&] {
                           char b[8];
                           snprintf(b, sizeof b, "%04x", tag);
                           return std::string(b);
                         }() + " (compressed WAV such as ADPCM) is not supported natively"};
  }
  int bytes = (bits + 7) / 8;
  // Some writers put the container size in blockAlign only (e.g. 20-bit in 3 bytes).
  if (info.blockAlign != info.channels * bytes) {
    if (info.blockAlign > 0 && info.blockAlign % info.channels == 0) bytes = info.blockAlign / info.channels;
    else throw AudioFailure{"not_audio", "corrupt WAV header (block align " + std::to_string(info.blockAlign) + " for " + std::to_string(info.channels) + " channels)"};
  }
  info.bytesPerSample = bytes;
  const bool ok = (info.encoding == Encoding::kPcmInt && bytes >= 1 && bytes <= 4) || (info.encoding == Encoding::kFloat && (bytes == 4 || bytes == 8)) ||
                  ((info.encoding == Encoding::kALaw || info.encoding == Encoding::kMuLaw) && bytes == 1);
  if (!ok) throw AudioFailure{"unsupported", std::to_string(bits) + "-bit " + (info.encoding == Encoding::kFloat ? "float" : "integer") + " WAV samples are not supported"};
  info.frames = dataBytes / info.blockAlign;
  if (info.frames == 0) throw AudioFailure{"empty", "the WAV file contains no audio samples"};
  return info;
}

float G711Table[2][256];
bool InitG711() {
  for (int i = 0; i < 256; i++) {
    int a = i ^ 0x55;
    int t = (a & 0x0F) << 4;
    const int seg = (a & 0x70) >> 4;
    if (seg == 0) t += 8;
    else t = (t + 0x108) << (seg - 1);
    G711Table[0][i] = float((a & 0x80) ? t : -t) / 32768.0f;
    const int u = ~i & 0xFF;
    int m = ((u & 0x0F) << 3) + 0x84;
    m <<= (u & 0x70) >> 4;
    G711Table[1][i] = float((u & 0x80) ? (0x84 - m) : (m - 0x84)) / 32768.0f;
  }
  return true;
}
const bool g711Ready = InitG711();

inline float SampleAt(const uint8_t* p, const WavInfo& w) {
  switch (w.encoding) {
    case Encoding::kPcmInt:
      switch (w.bytesPerSample) {
        case 1: return (float(p[0]) - 128.0f) * (1.0f / 128.0f);
        case 2: return float(int16_t(U16(p))) * (1.0f / 32768.0f);
        case 3: return float(int32_t(uint32_t(p[0] << 8) | uint32_t(p[1] << 16) | (uint32_t(p[2]) << 24)) >> 8) * (1.0f / 8388608.0f);
        default: return float(int32_t(U32(p))) * (1.0f / 2147483648.0f);
      }
    case Encoding::kFloat: {
      float v;
      if (w.bytesPerSample == 4) {
        std::memcpy(&v, p, 4);
      } else {
        double d;
        std::memcpy(&d, p, 8);
        v = float(d);
      }
      return std::isfinite(v) ? v : 0.0f;
    }
    case Encoding::kALaw: return G711Table[0][p[0]];
    case Encoding::kMuLaw: return G711Table[1][p[0]];
  }
  return 0;
}

// Decodes frames [a, b) (may extend outside the signal: zeros there) into mono floats.
void DecodeRange(const ByteSource& src, const WavInfo& w, int64_t a, int64_t b, float* dst) {
  const int64_t lo = std::max<int64_t>(a, 0), hi = std::min(b, w.frames);
  if (lo >= hi) {
    std::fill(dst, dst + (b - a), 0.0f);
    return;
  }
  std::fill(dst, dst + (lo - a), 0.0f);
  std::fill(dst + (hi - a), dst + (b - a), 0.0f);
  std::vector<uint8_t> raw;
  const int ch = w.channels, bps = w.bytesPerSample;
  const float scale = 1.0f / float(ch);
  for (int64_t f = lo; f < hi; f += kDecodeChunkFrames) {
    const int64_t n = std::min(kDecodeChunkFrames, hi - f);
    raw.resize(size_t(n) * w.blockAlign);
    src.Read(w.dataOffset + f * w.blockAlign, raw.size(), raw.data());
    float* out = dst + (f - a);
    if (w.encoding == Encoding::kPcmInt && bps == 2 && ch <= 2) {
      // The common cases get their own loop so the compiler can vectorise them.
      const uint8_t* p = raw.data();
      if (ch == 1) {
        for (int64_t i = 0; i < n; i++) out[i] = float(int16_t(U16(p + 2 * i))) * (1.0f / 32768.0f);
      } else {
        for (int64_t i = 0; i < n; i++) out[i] = (float(int16_t(U16(p + 4 * i))) + float(int16_t(U16(p + 4 * i + 2)))) * (0.5f / 32768.0f);
      }
      continue;
    }
    for (int64_t i = 0; i < n; i++) {
      const uint8_t* frame = raw.data() + size_t(i) * w.blockAlign;
      float s = 0;
      for (int c = 0; c < ch; c++) s += SampleAt(frame + c * bps, w);
      out[i] = s * scale;
    }
  }
}

struct Decoded {
  WavInfo info;
  int64_t rate = 0;  // of the output
  int64_t length = 0;
};

// Header + output length, with the size check made before any allocation.
Decoded Plan(const ByteSource& src, int64_t targetRate, int64_t maxOutput) {
  Decoded d;
  d.info = ParseWav(src);
  d.rate = targetRate > 0 ? targetRate : d.info.sampleRate;
  d.length = d.rate == d.info.sampleRate ? d.info.frames : Resampler(d.info.sampleRate, d.rate).OutputLength(d.info.frames);
  if (maxOutput > 0 && d.length > maxOutput) {
    throw AudioFailure{"too_large", "decoded audio would hold " + std::to_string(d.length) + " samples, more than the limit of " + std::to_string(maxOutput)};
  }
  return d;
}

void DecodeInto(const ByteSource& src, const Decoded& d, float* out, int threads) {
  if (d.rate == d.info.sampleRate) {
    const int64_t blocks = (d.length + kDecodeChunkFrames * 4 - 1) / (kDecodeChunkFrames * 4);
    std::atomic<int64_t> next{0};
    std::atomic<bool> failed{false};
    AudioFailure failure;
    RunParallel(int(std::max<int64_t>(1, std::min<int64_t>(threads, blocks))), [&](int) {
      try {
        for (int64_t b; !failed && (b = next.fetch_add(1)) < blocks;) {
          const int64_t a = b * kDecodeChunkFrames * 4, e = std::min(d.length, a + kDecodeChunkFrames * 4);
          DecodeRange(src, d.info, a, e, out + a);
        }
      } catch (const AudioFailure& f) {
        if (!failed.exchange(true)) failure = f;
      } catch (const std::bad_alloc&) {
        if (!failed.exchange(true)) failure = AudioFailure{"too_large", "out of memory while decoding"};
      }
    });
    if (failed) throw failure;
    return;
  }
  Resampler rs(d.info.sampleRate, d.rate);
  rs.Run(d.info.frames, [&](int64_t a, int64_t b, float* dst) { DecodeRange(src, d.info, a, b, dst); }, out, threads);
}

Napi::Error CodedError(Napi::Env env, const AudioFailure& f) {
  Napi::Error e = Napi::Error::New(env, f.message);
  e.Set("code", Napi::String::New(env, "audio." + f.code));
  return e;
}

Napi::Object Result(Napi::Env env, const Decoded& d, Napi::Float32Array samples) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("sampleRate", Napi::Number::New(env, double(d.rate)));
  o.Set("sourceRate", Napi::Number::New(env, double(d.info.sampleRate)));
  o.Set("channels", Napi::Number::New(env, d.info.channels));
  o.Set("frames", Napi::Number::New(env, double(d.info.frames)));
  o.Set("samples", samples);
  return o;
}

int ThreadsArg(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() > i && info[i].IsNumber()) return std::max(1, std::min(64, info[i].As<Napi::Number>().Int32Value()));
  return 1;
}

// wavDecode(bytes: Uint8Array, targetRate: number (0 = keep), threads?, maxOutput?)
Napi::Value WavDecode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsTypedArray() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "wavDecode(bytes: Uint8Array, targetRate: number, threads?: number, maxOutput?: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  const uint8_t* data = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  MemorySource src(data, ta.ByteLength());
  const int64_t maxOutput = info.Length() > 3 && info[3].IsNumber() ? int64_t(info[3].As<Napi::Number>().DoubleValue()) : 0;
  try {
    const Decoded d = Plan(src, int64_t(info[1].As<Napi::Number>().DoubleValue()), maxOutput);
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(d.length));
    DecodeInto(src, d, out.Data(), ThreadsArg(info, 2));
    return Result(env, d, out);
  } catch (const AudioFailure& f) {
    CodedError(env, f).ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    CodedError(env, {"too_large", "not enough memory for the decoded audio"}).ThrowAsJavaScriptException();
  }
  return env.Null();
}

class WavFileWorker : public Napi::AsyncWorker {
 public:
  WavFileWorker(Napi::Env env, std::string path, int64_t targetRate, int threads, int64_t maxOutput)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), path_(std::move(path)), target_(targetRate), threads_(threads), max_(maxOutput) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      FileSource src(path_);
      decoded_ = Plan(src, target_, max_);
      data_ = static_cast<float*>(std::malloc(size_t(decoded_.length) * sizeof(float)));
      if (!data_) throw AudioFailure{"too_large", "not enough memory for " + std::to_string(decoded_.length) + " decoded samples"};
      DecodeInto(src, decoded_, data_, threads_);
    } catch (const AudioFailure& f) {
      failure_ = f;
      SetError(f.message);
    } catch (const std::bad_alloc&) {
      failure_ = AudioFailure{"too_large", "not enough memory to decode this file"};
      SetError(failure_.message);
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, data_, size_t(decoded_.length) * sizeof(float), [](Napi::Env, void* p) { std::free(p); });
    data_ = nullptr;
    deferred_.Resolve(Result(env, decoded_, Napi::Float32Array::New(env, size_t(decoded_.length), ab, 0)));
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(CodedError(Env(), failure_).Value()); }
  ~WavFileWorker() override { std::free(data_); }

 private:
  Napi::Promise::Deferred deferred_;
  std::string path_;
  int64_t target_;
  int threads_;
  int64_t max_;
  Decoded decoded_;
  float* data_ = nullptr;
  AudioFailure failure_;
};

// wavDecodeFile(path, targetRate, threads?, maxOutput?) → Promise<decoded>
Napi::Value WavDecodeFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "wavDecodeFile(path: string, targetRate: number, threads?: number, maxOutput?: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  const int64_t maxOutput = info.Length() > 3 && info[3].IsNumber() ? int64_t(info[3].As<Napi::Number>().DoubleValue()) : 0;
  auto* w = new WavFileWorker(env, info[0].As<Napi::String>().Utf8Value(), int64_t(info[1].As<Napi::Number>().DoubleValue()), ThreadsArg(info, 2), maxOutput);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// wavProbe(path) → { sampleRate, channels, frames } from the header alone (a few small reads).
Napi::Value WavProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    Napi::TypeError::New(env, "wavProbe(path: string)").ThrowAsJavaScriptException();
    return env.Null();
  }
  try {
    FileSource src(info[0].As<Napi::String>().Utf8Value());
    const WavInfo w = ParseWav(src);
    Napi::Object o = Napi::Object::New(env);
    o.Set("sampleRate", Napi::Number::New(env, double(w.sampleRate)));
    o.Set("channels", Napi::Number::New(env, w.channels));
    o.Set("frames", Napi::Number::New(env, double(w.frames)));
    return o;
  } catch (const AudioFailure& f) {
    CodedError(env, f).ThrowAsJavaScriptException();
  }
  return env.Null();
}

// resample(x: Float32Array, from, to, threads?) → Float32Array
Napi::Value Resample(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array || !info[1].IsNumber() ||
      !info[2].IsNumber()) {
    Napi::TypeError::New(env, "resample(x: Float32Array, from: number, to: number, threads?: number)").ThrowAsJavaScriptException();
    return env.Null();
  }
  Napi::Float32Array x = info[0].As<Napi::Float32Array>();
  const int64_t from = int64_t(info[1].As<Napi::Number>().DoubleValue()), to = int64_t(info[2].As<Napi::Number>().DoubleValue());
  const float* xs = x.Data();
  const int64_t n = int64_t(x.ElementLength());
  try {
    if (from == to) {
      Napi::Float32Array out = Napi::Float32Array::New(env, size_t(n));
      std::memcpy(out.Data(), xs, size_t(n) * sizeof(float));
      return out;
    }
    Resampler rs(from, to);
    Napi::Float32Array out = Napi::Float32Array::New(env, size_t(rs.OutputLength(n)));
    rs.Run(
        n,
        [&](int64_t a, int64_t b, float* dst) {
          const int64_t lo = std::max<int64_t>(a, 0), hi = std::min(b, n);
          if (lo >= hi) {
            std::fill(dst, dst + (b - a), 0.0f);
            return;
          }
          std::fill(dst, dst + (lo - a), 0.0f);
          std::memcpy(dst + (lo - a), xs + lo, size_t(hi - lo) * sizeof(float));
          std::fill(dst + (hi - a), dst + (b - a), 0.0f);
        },
        out.Data(), ThreadsArg(info, 3));
    return out;
  } catch (const AudioFailure& f) {
    CodedError(env, f).ThrowAsJavaScriptException();
  } catch (const std::bad_alloc&) {
    CodedError(env, {"too_large", "not enough memory to resample"}).ThrowAsJavaScriptException();
  }
  return env.Null();
}

}  // namespace
}  // namespace audio

void RegisterAudioWav(Napi::Env env, Napi::Object exports) {
  exports.Set("wavDecode", Napi::Function::New(env, audio::WavDecode, "wavDecode"));
  exports.Set("wavDecodeFile", Napi::Function::New(env, audio::WavDecodeFile, "wavDecodeFile"));
  exports.Set("wavProbe", Napi::Function::New(env, audio::WavProbe, "wavProbe"));
  exports.Set("resample", Napi::Function::New(env, audio::Resample, "resample"));
}

}  // namespace wx
