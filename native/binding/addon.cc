// The kvlab Node-API addon: module registration only; each area lives in its own file.
#include <napi.h>

#include "exports.h"

namespace {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  kv::binding::export_info(env, exports);
  kv::binding::export_memory(env, exports);
  kv::binding::export_stream(env, exports);
  kv::binding::export_ops(env, exports);
  kv::binding::export_model_ops(env, exports);
  kv::binding::export_layer_plan(env, exports);
  kv::binding::export_codec(env, exports);
  return exports;
}

}  // namespace

NODE_API_MODULE(kvlab, init)
