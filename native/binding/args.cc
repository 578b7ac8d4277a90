#include "args.h"

#include <cmath>

#include "../core/status.h"
#include "../cuda/runtime.h"

namespace kv::binding {
namespace {

// Type tags stop a JavaScript caller from passing one kind of handle where another is expected.
const napi_type_tag kStorageTag = {0x6b766c6162535452ull, 0x0000000000000001ull};
const napi_type_tag kStreamTag = {0x6b766c6162535452ull, 0x0000000000000002ull};

std::string where(const char* fn, const char* name) {
  return std::string(fn) + ": argument '" + name + "'";
}

template <typename T>
T* unwrap_tagged(const Napi::CallbackInfo& info, size_t i, const napi_type_tag& tag,
                 const char* fn, const char* name, const char* expected) {
  Napi::Value v = info[i];
  bool ok = false;
  if (v.IsExternal()) napi_check_object_type_tag(info.Env(), v, &tag, &ok);
  if (!ok) fail(Code::Arg, where(fn, name) + ": expected " + expected);
  return v.As<Napi::External<T>>().Data();
}

}  // namespace

const napi_type_tag& storage_tag() { return kStorageTag; }

Napi::Value wrap_storage(Napi::Env env, std::shared_ptr<Storage> s) {
  auto* h = new StorageHandle{std::move(s)};
  auto ext = Napi::External<StorageHandle>::New(env, h, [](Napi::Env, StorageHandle* p) { delete p; });
  napi_type_tag_object(env, ext, &kStorageTag);
  return ext;
}

Napi::Value wrap_stream(Napi::Env env, int device, void* stream) {
  auto* h = new StreamHandle{device, stream};
  auto ext = Napi::External<StreamHandle>::New(env, h, [](Napi::Env, StreamHandle* p) {
    if (!p->destroyed) cuda::stream_destroy(p->device, p->stream);
    delete p;
  });
  napi_type_tag_object(env, ext, &kStreamTag);
  return ext;
}

StorageHandle* arg_storage_handle(const Napi::CallbackInfo& info, size_t i, const char* fn,
                                  const char* name) {
  return unwrap_tagged<StorageHandle>(info, i, kStorageTag, fn, name, "a kvlab storage handle");
}

std::shared_ptr<Storage> arg_storage(const Napi::CallbackInfo& info, size_t i, const char* fn,
                                     const char* name) {
  StorageHandle* h = arg_storage_handle(info, i, fn, name);
  if (!h->storage) fail(Code::Disposed, where(fn, name) + ": the tensor was disposed");
  return h->storage;
}

StreamHandle* arg_stream_or_null(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  StreamHandle* h = unwrap_tagged<StreamHandle>(info, i, kStreamTag, fn, "stream", "a kvlab stream");
  if (h->destroyed) fail(Code::Disposed, std::string(fn) + ": the stream was disposed");
  return h;
}

size_t arg_size(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) fail(Code::Arg, where(fn, name) + ": expected a non-negative integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || std::floor(d) != d)
    fail(Code::Arg, where(fn, name) + ": expected a non-negative integer, got " + std::to_string(d));
  return static_cast<size_t>(d);
}

int arg_int(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) fail(Code::Arg, where(fn, name) + ": expected an integer");
  double d = v.As<Napi::Number>().DoubleValue();
  if (std::floor(d) != d || d < -2147483648.0 || d > 2147483647.0)
    fail(Code::Arg, where(fn, name) + ": expected a 32-bit integer");
  return static_cast<int>(d);
}

float arg_float(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsNumber()) fail(Code::Arg, where(fn, name) + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) fail(Code::Arg, where(fn, name) + ": expected a finite number");
  return static_cast<float>(d);
}

bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) fail(Code::Arg, where(fn, name) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  return dtype_from_int(arg_int(info, i, fn, name));
}

void check_range(const Storage& s, size_t offset, size_t bytes, const char* fn, const char* what) {
  if (offset > s.bytes || bytes > s.bytes - offset)
    fail(Code::Shape, std::string(fn) + ": " + what + " range [" + std::to_string(offset) + ", " +
                          std::to_string(offset) + " + " + std::to_string(bytes) +
                          ") exceeds the storage of " + std::to_string(s.bytes) + " bytes");
}

}  // namespace kv::binding
