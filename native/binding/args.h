// Argument checks for the binding: every value coming from JavaScript is validated here before
// native code touches memory, and a bad one becomes kv::Error(Arg) naming the function and argument.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

#include "../core/dtype.h"
#include "../core/storage.h"

namespace kv::binding {

// What a JavaScript tensor's storage handle wraps. `storage` is reset by release(); async work
// keeps its own shared_ptr, so memory outlives a dispose() that races with it.
struct StorageHandle {
  std::shared_ptr<Storage> storage;
};

struct StreamHandle {
  int device;
  void* stream;  // cuda::Stream
  bool destroyed = false;
};

// The type tag of storage handles (for code that walks arrays of handles itself).
const napi_type_tag& storage_tag();

Napi::Value wrap_storage(Napi::Env env, std::shared_ptr<Storage> s);
Napi::Value wrap_stream(Napi::Env env, int device, void* stream);

// `fn` names the calling function for messages, e.g. "copy".
std::shared_ptr<Storage> arg_storage(const Napi::CallbackInfo& info, size_t i, const char* fn,
                                     const char* name);
StorageHandle* arg_storage_handle(const Napi::CallbackInfo& info, size_t i, const char* fn,
                                  const char* name);
StreamHandle* arg_stream_or_null(const Napi::CallbackInfo& info, size_t i, const char* fn);
size_t arg_size(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
int arg_int(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
float arg_float(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
bool arg_bool(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);
DType arg_dtype(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name);

// Checks that [offset, offset + bytes) lies inside the storage.
void check_range(const Storage& s, size_t offset, size_t bytes, const char* fn, const char* what);

}  // namespace kv::binding
