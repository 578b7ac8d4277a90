#include "errors.h"

#include <new>

namespace kv::binding {

Napi::Error make_error(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, code));
  return e;
}

Napi::Error current_exception_to_js(Napi::Env env) {
  try {
    throw;
  } catch (const Error& e) {
    return make_error(env, code_name(e.code), e.what());
  } catch (const std::bad_alloc&) {
    return make_error(env, code_name(Code::OOM), "host memory allocation failed (std::bad_alloc)");
  } catch (const std::exception& e) {
    return make_error(env, code_name(Code::Internal), std::string("native error: ") + e.what());
  } catch (...) {
    return make_error(env, code_name(Code::Internal), "unknown native error");
  }
}

}  // namespace kv::binding
