// Storage entry points: allocate, release, move bytes between JavaScript, host and devices.
#include <cstdint>
#include <cstring>

#include "../core/storage.h"
#include "../cuda/runtime.h"
#include "args.h"
#include "async.h"
#include "errors.h"
#include "exports.h"
#include "op_args.h"

namespace kv::binding {
namespace {

// alloc(device: int (-1 host), bytes, pinned) -> handle
Napi::Value alloc(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    int device = arg_int(info, 0, "alloc", "device");
    size_t bytes = arg_size(info, 1, "alloc", "bytes");
    bool pinned = arg_bool(info, 2, "alloc", "pinned");
    return wrap_storage(info.Env(), storage_alloc(device, bytes, pinned));
  });
}

// view(handle, offset, bytes) -> handle sharing the memory (keeps the parent alive)
Napi::Value view(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto s = arg_storage(info, 0, "view", "handle");
    size_t offset = arg_size(info, 1, "view", "offset");
    size_t bytes = arg_size(info, 2, "view", "bytes");
    return wrap_storage(info.Env(), storage_view(s, offset, bytes));
  });
}

// release(handle): frees now unless async work still holds the storage. Idempotent.
Napi::Value release(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    arg_storage_handle(info, 0, "release", "handle")->storage.reset();
    return info.Env().Undefined();
  });
}

// upload(handle, offset, TypedArray | ArrayBuffer): synchronous write of host JS bytes.
Napi::Value upload(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto s = arg_storage(info, 0, "upload", "handle");
    size_t offset = arg_size(info, 1, "upload", "offset");
    const void* src = nullptr;
    size_t bytes = 0;
    if (info[2].IsTypedArray()) {
      auto ta = info[2].As<Napi::TypedArray>();
      src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      bytes = ta.ByteLength();
    } else if (info[2].IsArrayBuffer()) {
      auto ab = info[2].As<Napi::ArrayBuffer>();
      src = ab.Data();
      bytes = ab.ByteLength();
    } else {
      fail(Code::Arg, "upload: argument 'data': expected a TypedArray or ArrayBuffer");
    }
    check_range(*s, offset, bytes, "upload", "destination");
    uint8_t* dst = static_cast<uint8_t*>(s->data) + offset;
    // To a device: queued on the compute stream without waiting for it (the driver stages the
    // pageable source before returning, so `data` may go away at once); a synchronous cudaMemcpy would
    // drain the device first, on every small upload (token ids, positions, indices).
    if (s->device == kHost) std::memcpy(dst, src, bytes);
    else cuda::memcpy(dst, s->device, src, kHost, bytes, nullptr, true);
    return info.Env().Undefined();
  });
}

// download(handle, offset, bytes) -> ArrayBuffer (a copy).
Napi::Value download(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto s = arg_storage(info, 0, "download", "handle");
    size_t offset = arg_size(info, 1, "download", "offset");
    size_t bytes = arg_size(info, 2, "download", "bytes");
    check_range(*s, offset, bytes, "download", "source");
    Napi::ArrayBuffer out = Napi::ArrayBuffer::New(info.Env(), bytes);
    const uint8_t* src = static_cast<const uint8_t*>(s->data) + offset;
    if (s->device == kHost) std::memcpy(out.Data(), src, bytes);
    else cuda::memcpy(out.Data(), kHost, src, s->device, bytes, nullptr, false);
    return out;
  });
}

struct CopyArgs {
  std::shared_ptr<Storage> dst, src;
  uint8_t* dst_ptr;
  const uint8_t* src_ptr;
  size_t bytes;
};

CopyArgs copy_args(const Napi::CallbackInfo& info, const char* fn) {
  CopyArgs a;
  a.dst = arg_storage(info, 0, fn, "dst");
  size_t dst_off = arg_size(info, 1, fn, "dstOffset");
  a.src = arg_storage(info, 2, fn, "src");
  size_t src_off = arg_size(info, 3, fn, "srcOffset");
  a.bytes = arg_size(info, 4, fn, "bytes");
  check_range(*a.dst, dst_off, a.bytes, fn, "destination");
  check_range(*a.src, src_off, a.bytes, fn, "source");
  a.dst_ptr = static_cast<uint8_t*>(a.dst->data) + dst_off;
  a.src_ptr = static_cast<const uint8_t*>(a.src->data) + src_off;
  return a;
}

// copy(dst, dstOffset, src, srcOffset, bytes): synchronous, any pair of devices.
Napi::Value copy(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    CopyArgs a = copy_args(info, "copy");
    if (a.dst->device == kHost && a.src->device == kHost) std::memmove(a.dst_ptr, a.src_ptr, a.bytes);
    else cuda::memcpy(a.dst_ptr, a.dst->device, a.src_ptr, a.src->device, a.bytes, nullptr, false);
    return info.Env().Undefined();
  });
}

// copy2d(dst, dstOffset, dstPitch, src, srcOffset, srcPitch, width, rows): rows of `width` bytes
// between strided layouts in one call (a chunk's KV into a cache's slots: every layer, K and V).
Napi::Value copy2d(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "copy2d";
    auto dst = arg_storage(info, 0, fn, "dst");
    size_t dst_off = arg_size(info, 1, fn, "dstOffset"), dpitch = arg_size(info, 2, fn, "dstPitch");
    auto src = arg_storage(info, 3, fn, "src");
    size_t src_off = arg_size(info, 4, fn, "srcOffset"), spitch = arg_size(info, 5, fn, "srcPitch");
    size_t width = arg_size(info, 6, fn, "width"), rows = arg_size(info, 7, fn, "rows");
    if (rows == 0 || width == 0) return info.Env().Undefined();
    if (width > dpitch || width > spitch) fail(Code::Arg, "copy2d: width exceeds a pitch");
    // The last row ends at offset + (rows - 1) * pitch + width; both spans are checked in full.
    const size_t dspan = mul(fn, {rows - 1, dpitch}), sspan = mul(fn, {rows - 1, spitch});
    if (dspan > SIZE_MAX - width || sspan > SIZE_MAX - width) fail(Code::Arg, "copy2d: sizes overflow");
    check_range(*dst, dst_off, dspan + width, fn, "destination");
    check_range(*src, src_off, sspan + width, fn, "source");
    uint8_t* d = static_cast<uint8_t*>(dst->data) + dst_off;
    const uint8_t* s = static_cast<const uint8_t*>(src->data) + src_off;
    if (dst->device == kHost && src->device == kHost) {
      for (size_t r = 0; r < rows; ++r) std::memmove(d + r * dpitch, s + r * spitch, width);
    } else {
      cuda::memcpy2d(d, dst->device, dpitch, s, src->device, spitch, width, rows);
    }
    return info.Env().Undefined();
  });
}

// copyAsync(dst, dstOffset, src, srcOffset, bytes, stream) -> Promise<void>. The copy is queued
// on the stream; the promise settles once it has finished. Both storages stay alive until then.
Napi::Value copy_async(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    CopyArgs a = copy_args(info, "copyAsync");
    StreamHandle* st = arg_stream_or_null(info, 5, "copyAsync");
    if (!st) fail(Code::Arg, "copyAsync: argument 'stream': expected a kvlab stream");
    if (a.dst->device == kHost && a.src->device == kHost)
      fail(Code::Device, "copyAsync: host-to-host copies have no stream; use copy()");
    int dev = a.dst->device != kHost ? a.dst->device : a.src->device;
    if (dev != st->device)
      fail(Code::Device, "copyAsync: the stream belongs to cuda:" + std::to_string(st->device) +
                             " but the copy involves cuda:" + std::to_string(dev));
    cuda::memcpy(a.dst_ptr, a.dst->device, a.src_ptr, a.src->device, a.bytes, st->stream, true);
    cuda::Event ev = cuda::event_record(st->device, st->stream);
    return wait_for_event(info.Env(), st->device, ev, {a.dst, a.src});
  });
}

// A queued copy's completion: an event on the default stream and the storages it touches.
struct Fence {
  int device;
  cuda::Event event;  // nullptr once waited for
  std::vector<std::shared_ptr<Storage>> keep_alive;
};
const napi_type_tag kFenceTag = {0x6b766c6162535452ull, 0x0000000000000003ull};

// copyQueued(dst, dstOffset, src, srcOffset, bytes) -> fence. The copy is queued on the device's
// default stream behind the work already there (a token id read back while the next decode step
// is queued); the host does not wait. With pinned host memory it is truly asynchronous.
Napi::Value copy_queued(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    CopyArgs a = copy_args(info, "copyQueued");
    if (a.dst->device == kHost && a.src->device == kHost)
      fail(Code::Device, "copyQueued: host-to-host copies are not queued; use copy()");
    const int dev = a.dst->device != kHost ? a.dst->device : a.src->device;
    cuda::memcpy(a.dst_ptr, a.dst->device, a.src_ptr, a.src->device, a.bytes, nullptr, true);
    auto* f = new Fence{dev, cuda::event_record(dev, nullptr), {a.dst, a.src}};
    auto ext = Napi::External<Fence>::New(info.Env(), f, [](Napi::Env, Fence* p) {
      if (p->event) cuda::event_destroy(p->device, p->event);
      delete p;
    });
    napi_type_tag_object(info.Env(), ext, &kFenceTag);
    return ext;
  });
}

// fenceWait(fence): blocks until the queued copy has finished; a second wait returns at once.
Napi::Value fence_wait(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    bool tagged = false;
    if (info[0].IsExternal()) napi_check_object_type_tag(info.Env(), info[0], &kFenceTag, &tagged);
    if (!tagged) fail(Code::Arg, "fenceWait: argument 'fence': expected a fence from copyQueued");
    Fence* f = info[0].As<Napi::External<Fence>>().Data();
    if (f->event) {
      cuda::Event e = f->event;
      f->event = nullptr;
      f->keep_alive.clear();
      cuda::event_wait_and_destroy(f->device, e);
    }
    return info.Env().Undefined();
  });
}

Napi::Value memory_stats(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Napi::Env env = info.Env();
    Napi::Array out = Napi::Array::New(env);
    uint32_t i = 0;
    for (const MemoryCounter& c : memory_counters()) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("device", c.device);
      o.Set("liveBytes", static_cast<double>(c.live_bytes));
      o.Set("peakBytes", static_cast<double>(c.peak_bytes));
      o.Set("liveAllocations", static_cast<double>(c.live_allocations));
      o.Set("totalAllocations", static_cast<double>(c.total_allocations));
      out.Set(i++, o);
    }
    return out;
  });
}

}  // namespace

void export_memory(Napi::Env env, Napi::Object exports) {
  exports.Set("alloc", Napi::Function::New(env, alloc, "alloc"));
  exports.Set("view", Napi::Function::New(env, view, "view"));
  exports.Set("release", Napi::Function::New(env, release, "release"));
  exports.Set("upload", Napi::Function::New(env, upload, "upload"));
  exports.Set("download", Napi::Function::New(env, download, "download"));
  exports.Set("copy", Napi::Function::New(env, copy, "copy"));
  exports.Set("copyAsync", Napi::Function::New(env, copy_async, "copyAsync"));
  exports.Set("copyQueued", Napi::Function::New(env, copy_queued, "copyQueued"));
  exports.Set("fenceWait", Napi::Function::New(env, fence_wait, "fenceWait"));
  exports.Set("copy2d", Napi::Function::New(env, copy2d, "copy2d"));
  exports.Set("memoryStats", Napi::Function::New(env, memory_stats, "memoryStats"));
}

}  // namespace kv::binding
