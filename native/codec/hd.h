// Code shared by the C++ codec and the CUDA kernels: KV_HD marks inline functions that compile for
// both (empty for g++), and the float helpers round exactly like IEEE single precision on both sides
// (no FMA contraction, round-to-nearest-even), so the CPU and the GPU quantise to the same symbols.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define KV_HD __host__ __device__
#else
#define KV_HD
#endif

namespace kv::codec {

#if defined(__CUDA_ARCH__)
KV_HD inline float fmul(float a, float b) { return __fmul_rn(a, b); }
KV_HD inline float fadd(float a, float b) { return __fadd_rn(a, b); }
KV_HD inline float fsub(float a, float b) { return __fsub_rn(a, b); }
KV_HD inline float fdiv(float a, float b) { return __fdiv_rn(a, b); }
KV_HD inline float frint(float a) { return rintf(a); }
KV_HD inline double dadd(double a, double b) { return __dadd_rn(a, b); }
KV_HD inline double ddiv(double a, double b) { return __ddiv_rn(a, b); }
KV_HD inline uint32_t fbits(float f) { return __float_as_uint(f); }
KV_HD inline float ffrom(uint32_t u) { return __uint_as_float(u); }
#else
// The C++ side is compiled with -ffp-contract=off (CMakeLists.txt), so these are single IEEE ops.
inline float fmul(float a, float b) { return a * b; }
inline float fadd(float a, float b) { return a + b; }
inline float fsub(float a, float b) { return a - b; }
inline float fdiv(float a, float b) { return a / b; }
inline float frint(float a) { return __builtin_rintf(a); }
inline double dadd(double a, double b) { return a + b; }
inline double ddiv(double a, double b) { return a / b; }  // default rounding mode: nearest even
inline uint32_t fbits(float f) { uint32_t u; __builtin_memcpy(&u, &f, 4); return u; }
inline float ffrom(uint32_t u) { float f; __builtin_memcpy(&f, &u, 4); return f; }
#endif

KV_HD inline float fabs_exact(float a) { return ffrom(fbits(a) & 0x7fffffffu); }

// |x| rounded up to bf16 (so a scale never clips the value it was taken from); 2 bytes stored.
// Callers pass finite values below 2^127 (checked at encode time).
KV_HD inline uint16_t bf16_round_up(float a) {
  uint32_t u = fbits(fabs_exact(a));
  if (u & 0xffffu) u = (u + 0x10000u) & 0xffff0000u;
  return static_cast<uint16_t>(u >> 16);
}
KV_HD inline float bf16_value(uint16_t h) { return ffrom(static_cast<uint32_t>(h) << 16); }

// Round half to even, then clamp to [-m, m]. NaN never reaches here (encode rejects it).
KV_HD inline int32_t quantize_sym(float x, float inv, int32_t m) {
  float r = frint(fmul(x, inv));
  if (r > static_cast<float>(m)) return m;
  if (r < -static_cast<float>(m)) return -m;
  return static_cast<int32_t>(r);
}

// The step of a symmetric quantiser with levels -m..m over [-scale, scale], and its inverse.
KV_HD inline float quant_step(float scale, int32_t m) { return fdiv(scale, static_cast<float>(m)); }
KV_HD inline float quant_inv(float scale, int32_t m) {
  return scale > 0.0f ? fdiv(static_cast<float>(m), scale) : 0.0f;
}

}  // namespace kv::codec
