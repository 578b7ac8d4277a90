// Element-wise ops: dispatch to the C++ reference (host storage) or the CUDA kernel (device).
#include "../core/dtype.h"
#include "../cpu/cast.h"
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
      cuda::cast(src->device, src->data, st, dst->data, dt, n, stream ? stream->stream : nullptr);
      if (!stream) cuda::stream_synchronize(src->device, nullptr);
    }
    return info.Env().Undefined();
  });
}

}  // namespace

void export_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("cast", Napi::Function::New(env, cast, "cast"));
}

}  // namespace kv::binding
