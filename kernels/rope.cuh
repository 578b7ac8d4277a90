// rope: in-place rotary embedding, halves convention, for x[n, heads, head_dim] (head_dim even):
//   for t < n, h < heads, i < head_dim/2:  theta = float(pos[t]) * inv_freq[i]
//   (a, b) = (x[t,h,i], x[t,h,i + head_dim/2]) <- (a cos(theta) - b sin(theta), b cos(theta) + a sin(theta))
// Reference: native/cpu/ops.h. theta is one f32 multiply; cos and sin come from the precise sincosf
// (not the __sinf/__cosf intrinsics), so results agree with the CPU to about 1e-6 relative even for
// large positions. pos may be negative. One block per token: the block computes cos/sin of each
// frequency once into shared memory, then rotates every head. dtype: kF32, kF16 or kBF16.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t rope(void* x, int dtype, const int32_t* pos, const float* inv_freq, size_t n, size_t heads,
                 size_t head_dim, cudaStream_t stream);

// rope_qk_scatter: a layer's new tokens in one launch: rope on q[n, hq, head_dim] in place, rope on
// k[n, hkv, head_dim] written to k_cache row slots[t], v[n, hkv, head_dim] copied to v_cache row
// slots[t] (rows of hkv * head_dim). Equal, bit for bit, to rope(q), rope(k) and two row scatters.
// With hq = 0 only k and v are written, and q may be null.
cudaError_t rope_qk_scatter(void* q, const void* k, const void* v, int dtype, const int32_t* pos, const float* inv_freq,
                            const int32_t* slots, void* k_cache, void* v_cache, size_t n, size_t hq, size_t hkv,
                            size_t head_dim, cudaStream_t stream);

}  // namespace kvk
