// A total order on floats as unsigned keys (larger float, larger key; NaN above +inf), so the CPU and
// the GPU rank values the same way, ties included.
#pragma once
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#define KV_ORDER_HD __host__ __device__
#else
#define KV_ORDER_HD
#endif

namespace kv {

KV_ORDER_HD inline uint32_t float_order_key(float f) {
  uint32_t b;
  memcpy(&b, &f, 4);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

}  // namespace kv
