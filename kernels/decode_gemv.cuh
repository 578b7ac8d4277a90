// decode_gemv: the decode step's projections fused with what surrounds them, for a few rows
// (n <= kDecodeGemvMaxRows). Reference: the unfused sequence in native/engine/layer.cc's CPU path.
//   h = norm_w ? rmsnorm(x) * norm_w : x       (RMS statistics from the same pass over x, in f32)
//   kStore:  parts[j].out[r, i] = h[r] . parts[j].w[i] (+ parts[j].bias[i])   (QKV: 3 parts, one launch)
//   kAddInto: parts[0].out[r, i] += h[r] . parts[0].w[i]                      (o / down projection + residual)
//   kSwiglu: parts[0].out[r, i] = silu(h[r] . w_gate[i]) * (h[r] . w_up[i])   (gate, up = parts 0, 1)
// One warp per output row streams its weight row(s) with 16-byte loads, as kernels/gemv.cu does;
// f32 accumulation, one rounding at the store. Removes the rmsnorm, bias, swiglu and add launches
// and the round trips of their intermediates through memory.
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

constexpr int kDecodeGemvMaxRows = 4;
constexpr int kDecodeGemvMaxParts = 3;

enum DecodeEpilogue { kStore = 0, kAddInto = 1, kSwiglu = 2 };

struct DecodeGemvPart {
  const void* w;     // [m, k]
  const void* bias;  // [m] or null (kStore only)
  void* out;         // [n, m]
  size_t m;
};

// Whether these shapes and pointers qualify (otherwise run the unfused ops).
bool decode_gemv_supported(const void* x, const DecodeGemvPart* parts, int nparts, int dtype, size_t n, size_t k);

cudaError_t decode_gemv(const void* x, const void* norm_w, float eps, const DecodeGemvPart* parts, int nparts,
                        int epilogue, int dtype, size_t n, size_t k, cudaStream_t stream);

}  // namespace kvk
