// Element access for host KV buffers and the input checks every encoder shares.
#include <cmath>
#include <string>

#include "../core/half.h"
#include "../core/status.h"
#include "codec.h"

namespace kv::codec {

float load_value(const void* data, DType t, size_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(data)[i];
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(data)[i]);
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(data)[i]);
    default: fail(Code::DType, std::string("codec: KV must be f32, f16 or bf16, got ") + dtype_name(t));
  }
}

void store_value(void* data, DType t, size_t i, float v) {
  switch (t) {
    case DType::F32: static_cast<float*>(data)[i] = v; return;
    case DType::F16: static_cast<uint16_t*>(data)[i] = f32_to_f16(v); return;
    case DType::BF16: static_cast<uint16_t*>(data)[i] = f32_to_bf16(v); return;
    default: fail(Code::DType, std::string("codec: decoded KV must be f32, f16 or bf16, got ") + dtype_name(t));
  }
}

void check_finite(const KvInput& in) {
  if (in.dtype != DType::F32 && in.dtype != DType::F16 && in.dtype != DType::BF16)
    fail(Code::DType, std::string("codec: KV must be f32, f16 or bf16, got ") + dtype_name(in.dtype));
  const Shape& s = in.shape;
  if (s.layers < 1 || s.tokens < 1 || s.heads < 1 || s.head_dim < 1 || s.layers > 65535 || s.heads > 65535 ||
      s.head_dim > 65535 || s.tokens > (1u << 24))
    fail(Code::Shape, "codec: KV shape must have 1..65535 layers, heads and head_dim and 1..2^24 tokens");
  if (in.data == nullptr || in.positions == nullptr) fail(Code::Arg, "codec: null KV or positions");
  const size_t n = s.values();
  for (size_t i = 0; i < n; ++i) {
    float v = load_value(in.data, in.dtype, i);
    // Steps and scales are bf16 and multiplied by up to 2 * 127 levels: 2^100 keeps all of it finite.
    if (!std::isfinite(v) || std::fabs(v) >= 1.2676506e30f)
      fail(Code::Arg, "codec: KV value " + std::to_string(v) + " at element " + std::to_string(i) +
                          " is not finite or not below 2^100");
  }
}

}  // namespace kv::codec
