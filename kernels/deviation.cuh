// row_sq_diff: per-row squared distance, CacheBlend's KV deviation of a token on a layer.
// Reference: native/cpu/ops.h.
//   out[r] (+)= sum_c (a[r, c] - b[R, c])^2    for r < n, c < w; R = b_rows[r] (b_rows non-null) or r;
//   a, b of one float dtype, out f32
// One warp per row; with `accumulate` the sum is added to out[r] (K and V deviation summed). b_rows
// reads a token's fresh K/V straight from the cache slab, with no gathered copy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t row_sq_diff(const void* a, const void* b, const int32_t* b_rows, float* out, int dtype, size_t n, size_t w,
                        bool accumulate, cudaStream_t stream);

// top_k_rows: out[0..k) = the rows of the k largest of v[0..n) (ties: the lower row), ascending, as
// native/cpu's; k <= n. CacheBlend's gradual filtering on the device: the next layer's tokens are
// chosen without the deviations leaving the GPU. One block: a radix select finds the k-th largest
// key, then an ordered compaction keeps the rows above it and the first rows equal to it.
cudaError_t top_k_rows(const float* v, size_t n, size_t k, int32_t* out, cudaStream_t stream);

}  // namespace kvk
