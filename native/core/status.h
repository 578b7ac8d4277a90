// kvlab native errors: every failure inside native code becomes a kv::Error carrying a stable code.
// The binding turns it into a JavaScript exception with the same code; nothing here aborts.
#pragma once
#include <stdexcept>
#include <string>

namespace kv {

enum class Code {
  Arg,       // a malformed argument (wrong type, out-of-range offset)
  DType,     // an unsupported or mismatched dtype
  Shape,     // a shape or size mismatch
  Disposed,  // use of a tensor/stream after dispose()
  OOM,       // an allocation failed (host or device)
  Device,    // the requested device is not available
  Cuda,      // a CUDA runtime or cuBLAS call failed
  Internal,  // a broken invariant inside kvlab (a bug)
  Format,    // a malformed file or bitstream (bad magic, truncated, checksum mismatch)
  NotFound,  // a named thing that was looked for and not found (e.g. a codec profile)
};

// Stable string codes shared with src/runtime/errors.ts.
inline const char* code_name(Code c) {
  switch (c) {
    case Code::Arg: return "KVLAB_ARG";
    case Code::DType: return "KVLAB_DTYPE";
    case Code::Shape: return "KVLAB_SHAPE";
    case Code::Disposed: return "KVLAB_DISPOSED";
    case Code::OOM: return "KVLAB_OOM";
    case Code::Device: return "KVLAB_DEVICE";
    case Code::Cuda: return "KVLAB_CUDA";
    case Code::Internal: return "KVLAB_INTERNAL";
    case Code::Format: return "KVLAB_FORMAT";
    case Code::NotFound: return "KVLAB_NOT_FOUND";
  }
  return "KVLAB_INTERNAL";
}

struct Error : std::runtime_error {
  Code code;
  Error(Code c, const std::string& msg) : std::runtime_error(msg), code(c) {}
};

[[noreturn]] inline void fail(Code c, const std::string& msg) { throw Error(c, msg); }

}  // namespace kv
