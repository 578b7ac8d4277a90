// row_sq_diff: per-row squared distance, CacheBlend's KV deviation of a token on a layer.
// Reference: native/cpu/ops.h.
//   out[r] (+)= sum_c (a[r, c] - b[r, c])^2    for r < n, c < w; a, b of one float dtype, out f32
// One warp per row; with `accumulate` the sum is added to out[r] (K and V deviation summed).
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t row_sq_diff(const void* a, const void* b, float* out, int dtype, size_t n, size_t w, bool accumulate,
                        cudaStream_t stream);

}  // namespace kvk
