// rmsnorm: out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w, for x[n, dim], w[dim].
// Reference: native/cpu/ops.h. In f32: ss = sum of squares (block tree order), r = 1 / sqrtf(ss / dim
// + eps) with IEEE sqrt and division, out = (x * r) * w rounded once to the dtype. out may alias x.
// One block per row (grid-stride over rows), 16-byte loads when dim and the pointers allow.
// dtype: kF32, kF16 or kBF16 (x, w and out share it).
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t rmsnorm(const void* x, const void* w, void* out, int dtype, size_t n, size_t dim, float eps,
                    cudaStream_t stream);

}  // namespace kvk
