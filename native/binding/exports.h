// Each binding file registers its functions on the addon's exports.
#pragma once
#include <napi.h>

namespace kv::binding {

void export_info(Napi::Env env, Napi::Object exports);
void export_memory(Napi::Env env, Napi::Object exports);
void export_stream(Napi::Env env, Napi::Object exports);
void export_ops(Napi::Env env, Napi::Object exports);
void export_model_ops(Napi::Env env, Napi::Object exports);
void export_layer_plan(Napi::Env env, Napi::Object exports);
void export_codec(Napi::Env env, Napi::Object exports);

}  // namespace kv::binding
