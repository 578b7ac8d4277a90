#include "random.h"

#include "../core/half.h"
#include "parallel.h"

namespace kv::cpu {
namespace {

inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

void fill_uniform(void* out, DType type, size_t n, uint64_t seed, float lo, float hi) {
  uint64_t base = seed * 0x9E3779B97F4A7C15ull;
  float span = hi - lo;
  parallel_for(n, 1 << 15, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float u = static_cast<float>(splitmix64(base + i) >> 40) * (1.0f / 16777216.0f);
      volatile float prod = span * u;  // two roundings, never fused: the kernel does the same
      float x = lo + prod;
      switch (type) {
        case DType::F16: static_cast<uint16_t*>(out)[i] = f32_to_f16(x); break;
        case DType::BF16: static_cast<uint16_t*>(out)[i] = f32_to_bf16(x); break;
        default: static_cast<float*>(out)[i] = x;
      }
    }
  });
}

}  // namespace kv::cpu
