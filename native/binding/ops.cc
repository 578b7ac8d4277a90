// Element-wise ops: dispatch to the C++ reference (host storage) or the CUDA kernel (device).
#include "../core/dtype.h"
#include "../cpu/cast.h"
#include "../cpu/random.h"
#include "../cuda/runtime.h"
#include "args.h"
#include "errors.h"
#include "exports.h"

namespace kv::binding {
namespace {

// cast(src, srcDtype, dst, dstDtype, count, stream?): dst[i] = convert(src[i]) for i < count.
// Both storages must be on the same device. Device work is queued on `stream` (or the default).
Napi::Value cast(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto src = arg_storage(info, 0, "cast", "src");
    DType st = arg_dtype(info, 1, "cast", "srcDtype");
    auto dst = arg_storage(info, 2, "cast", "dst");
    DType dt = arg_dtype(info, 3, "cast", "dstDtype");
    size_t n = arg_size(info, 4, "cast", "count");
    StreamHandle* stream = arg_stream_or_null(info, 5, "cast");
    if (n > SIZE_MAX / 8) fail(Code::Shape, "cast: count " + std::to_string(n) + " is too large");
    check_range(*src, 0, n * dtype_size(st), "cast", "source");
    check_range(*dst, 0, n * dtype_size(dt), "cast", "destination");
    if (src->device != dst->device)
      fail(Code::Device, "cast: source and destination are on different devices");
    if (src->device == kHost) {
      cpu::cast(src->data, st, dst->data, dt, n);
    } else {
      if (stream && stream->device != src->device)
        fail(Code::Device, "cast: the stream belongs to another device");
      // Queued on the stream (or the legacy default stream, which every later copy waits for).
      cuda::cast(src->device, src->data, st, dst->data, dt, n, stream ? stream->stream : nullptr);
    }
    return info.Env().Undefined();
  });
}

// fillUniform(out, dtype, n, seed, lo, hi, stream?): seeded uniform values, same bits on both backends.
Napi::Value fill_uniform(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto out = arg_storage(info, 0, "fillUniform", "out");
    DType t = arg_dtype(info, 1, "fillUniform", "dtype");
    size_t n = arg_size(info, 2, "fillUniform", "n");
    size_t seed = arg_size(info, 3, "fillUniform", "seed");
    float lo = arg_float(info, 4, "fillUniform", "lo"), hi = arg_float(info, 5, "fillUniform", "hi");
    StreamHandle* stream = arg_stream_or_null(info, 6, "fillUniform");
    if (t != DType::F32 && t != DType::F16 && t != DType::BF16)
      fail(Code::DType, std::string("fillUniform: expected f32, f16 or bf16, got ") + dtype_name(t));
    if (n > SIZE_MAX / 4) fail(Code::Shape, "fillUniform: n is too large");
    check_range(*out, 0, n * dtype_size(t), "fillUniform", "destination");
    if (out->device == kHost) cpu::fill_uniform(out->data, t, n, seed, lo, hi);
    else cuda::fill_uniform(out->device, out->data, t, n, seed, lo, hi, stream ? stream->stream : nullptr);
    return info.Env().Undefined();
  });
}

}  // namespace

void export_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("cast", Napi::Function::New(env, cast, "cast"));
  exports.Set("fillUniform", Napi::Function::New(env, fill_uniform, "fillUniform"));
}

}  // namespace kv::binding
