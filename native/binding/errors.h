// Error translation at the boundary: kv::Error and any other C++ exception become a JavaScript
// Error whose `code` property is a stable KVLAB_* string (src/runtime/errors.ts maps it to a class).
#pragma once
#include <napi.h>

#include <exception>
#include <string>

#include "../core/status.h"

namespace kv::binding {

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message);

// Converts the exception being handled (call inside catch (...)) into a JavaScript Error.
Napi::Error current_exception_to_js(Napi::Env env);

// Wraps a binding function body: C++ exceptions are thrown on to JavaScript as typed errors.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw current_exception_to_js(info.Env());
  }
}

}  // namespace kv::binding
