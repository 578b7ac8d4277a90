// Element types kvlab stores. The numeric values are part of the binding's contract with
// src/runtime/dtype.ts (DTYPE_IDS there) and of the kernels' launch signatures.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "status.h"

namespace kv {

enum class DType : int32_t { F32 = 0, F16 = 1, BF16 = 2, I8 = 3, U8 = 4, I32 = 5 };
constexpr int kNumDTypes = 6;

inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: case DType::I32: return 4;
    case DType::F16: case DType::BF16: return 2;
    case DType::I8: case DType::U8: return 1;
  }
  return 0;
}

inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I8: return "i8";
    case DType::U8: return "u8";
    case DType::I32: return "i32";
  }
  return "?";
}

inline DType dtype_from_int(int64_t v) {
  if (v < 0 || v >= kNumDTypes) fail(Code::DType, "unknown dtype id " + std::to_string(v));
  return static_cast<DType>(v);
}

}  // namespace kv
