#include "op_args.h"

#include <string>
#include <vector>

#include "../core/status.h"

namespace kv::binding {

Buf arg_buf(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t bytes) {
  Buf b{arg_storage(info, i, fn, name)};
  if (b.s->bytes < bytes)
    fail(Code::Shape, std::string(fn) + ": '" + name + "' holds " + std::to_string(b.s->bytes) +
                          " bytes but the op needs " + std::to_string(bytes));
  return b;
}

Buf arg_buf_or_null(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name, size_t bytes) {
  if (info[i].IsNull() || info[i].IsUndefined()) return Buf{};
  return arg_buf(info, i, fn, name, bytes);
}

int common_device(const char* fn, std::initializer_list<const Buf*> bufs, const StreamHandle* stream) {
  int dev = kHost;
  bool first = true;
  for (const Buf* b : bufs) {
    if (!b->s) continue;
    if (first) {
      dev = b->s->device;
      first = false;
    } else if (b->s->device != dev) {
      fail(Code::Device, std::string(fn) + ": all tensors must be on one device (found " +
                             (dev == kHost ? std::string("cpu") : "cuda:" + std::to_string(dev)) + " and " +
                             (b->s->device == kHost ? std::string("cpu") : "cuda:" + std::to_string(b->s->device)) + ")");
    }
  }
  if (stream && stream->device != dev)
    fail(Code::Device, std::string(fn) + ": the stream belongs to cuda:" + std::to_string(stream->device));
  return dev;
}

void require_cpu_f32(const char* fn, DType t) {
  if (t != DType::F32)
    fail(Code::DType, std::string(fn) + ": the CPU backend computes in f32, got " + dtype_name(t) + " (cast first)");
}

void require_float(const char* fn, DType t) {
  if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
    fail(Code::DType, std::string(fn) + ": expected f32, f16 or bf16, got " + dtype_name(t));
}

void check_indices(const char* fn, const Buf& idx, size_t n, size_t limit, bool unique) {
  if (idx.s->device != kHost) return;
  const int32_t* p = idx.ptr<int32_t>();
  std::vector<bool> seen(unique ? limit : 0);
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < 0 || static_cast<size_t>(p[i]) >= limit)
      fail(Code::Arg, std::string(fn) + ": index " + std::to_string(p[i]) + " at position " + std::to_string(i) +
                          " is outside [0, " + std::to_string(limit) + ")");
    if (unique) {
      if (seen[p[i]]) fail(Code::Arg, std::string(fn) + ": index " + std::to_string(p[i]) + " appears twice");
      seen[p[i]] = true;
    }
  }
}

size_t mul(const char* fn, std::initializer_list<size_t> xs) {
  size_t r = 1;
  for (size_t x : xs) {
    if (x != 0 && r > SIZE_MAX / x) fail(Code::Shape, std::string(fn) + ": sizes overflow");
    r *= x;
  }
  return r;
}

}  // namespace kv::binding
