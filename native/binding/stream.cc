// CUDA streams: create, synchronize (as a promise, off the main thread), destroy.
#include "../cuda/runtime.h"
#include "args.h"
#include "async.h"
#include "errors.h"
#include "exports.h"

namespace kv::binding {
namespace {

// streamCreate(device) -> stream handle
Napi::Value stream_create(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    int device = arg_int(info, 0, "streamCreate", "device");
    return wrap_stream(info.Env(), device, cuda::stream_create(device));
  });
}

// streamSynchronize(stream) -> Promise<void>
Napi::Value stream_synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    StreamHandle* st = arg_stream_or_null(info, 0, "streamSynchronize");
    if (!st) fail(Code::Arg, "streamSynchronize: argument 'stream': expected a kvlab stream");
    return wait_for_event(info.Env(), st->device, cuda::event_record(st->device, st->stream), {});
  });
}

// streamDestroy(stream): waits for queued work, then frees the stream. Idempotent.
Napi::Value stream_destroy(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    if (info[0].IsUndefined() || info[0].IsNull())
      fail(Code::Arg, "streamDestroy: argument 'stream': expected a kvlab stream");
    StreamHandle* st = nullptr;
    try {
      st = arg_stream_or_null(info, 0, "streamDestroy");
    } catch (const Error& e) {
      if (e.code == Code::Disposed) return info.Env().Undefined();
      throw;
    }
    cuda::stream_synchronize(st->device, st->stream);
    cuda::stream_destroy(st->device, st->stream);
    st->destroyed = true;
    return info.Env().Undefined();
  });
}

// deviceSynchronize(device): waits (blocking) for all queued work on the device.
Napi::Value device_synchronize(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    cuda::stream_synchronize(arg_int(info, 0, "deviceSynchronize", "device"), nullptr);
    return info.Env().Undefined();
  });
}

// profilerRange(device, start): cudaProfilerStart/Stop, for `ncu --profile-from-start off`.
Napi::Value profiler_range(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    cuda::profiler_range(arg_int(info, 0, "profilerRange", "device"), arg_bool(info, 1, "profilerRange", "start"));
    return info.Env().Undefined();
  });
}

}  // namespace

void export_stream(Napi::Env env, Napi::Object exports) {
  exports.Set("streamCreate", Napi::Function::New(env, stream_create, "streamCreate"));
  exports.Set("streamSynchronize", Napi::Function::New(env, stream_synchronize, "streamSynchronize"));
  exports.Set("deviceSynchronize", Napi::Function::New(env, device_synchronize, "deviceSynchronize"));
  exports.Set("streamDestroy", Napi::Function::New(env, stream_destroy, "streamDestroy"));
  exports.Set("profilerRange", Napi::Function::New(env, profiler_range, "profilerRange"));
}

}  // namespace kv::binding
