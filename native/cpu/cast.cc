#include "cast.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/half.h"
#include "parallel.h"

namespace kv::cpu {
namespace {

float load(const void* p, DType t, size_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(p)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::I8: return static_cast<float>(static_cast<const int8_t*>(p)[i]);
    case DType::U8: return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
    case DType::I32: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
  }
  return 0.0f;
}

// Rounds half to even and saturates into [lo, hi]; NaN becomes 0.
template <typename I>
I to_int(float x, float lo, float hi) {
  if (std::isnan(x)) return 0;
  if (x <= lo) return static_cast<I>(lo);
  if (x >= hi) return static_cast<I>(hi);
  return static_cast<I>(std::nearbyint(x));
}

void store(void* p, DType t, size_t i, float x) {
  switch (t) {
    case DType::F32: static_cast<float*>(p)[i] = x; break;
    case DType::F16: static_cast<uint16_t*>(p)[i] = f32_to_f16(x); break;
    case DType::BF16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(x); break;
    case DType::I8: static_cast<int8_t*>(p)[i] = to_int<int8_t>(x, -128.0f, 127.0f); break;
    case DType::U8: static_cast<uint8_t*>(p)[i] = to_int<uint8_t>(x, 0.0f, 255.0f); break;
    case DType::I32: {
      int32_t v;
      if (std::isnan(x)) v = 0;
      else if (x >= 2147483648.0f) v = INT32_MAX;
      else if (x <= -2147483648.0f) v = INT32_MIN;
      else v = static_cast<int32_t>(std::nearbyint(x));
      static_cast<int32_t*>(p)[i] = v;
      break;
    }
  }
}

}  // namespace

void cast(const void* src, DType src_type, void* dst, DType dst_type, size_t n) {
  if (src_type == dst_type) {
    std::memcpy(dst, src, n * dtype_size(src_type));
    return;
  }
  // Every other pair goes through f32, as kernels/cast.cu does: i32 beyond 2^24 rounds there
  // first, then the store rounds once more for f16/bf16 (the same two steps on both backends).
  parallel_for(n, 1 << 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) store(dst, dst_type, i, load(src, src_type, i));
  });
}

}  // namespace kv::cpu
