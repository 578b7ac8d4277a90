// add: out[i] = a[i] + b[i] (f32 arithmetic, rounded once to the dtype); out may alias a or b.
// bias_rows: out[i, :] = bias for i < n (out[n, m], bias[m]): the matmul wrapper fills out with the
// bias and lets cuBLAS accumulate onto it (beta = 1), so out = x w^T + bias is rounded once.
// Reference: native/cpu/ops.h (add, matmul's bias). dtype: kF32, kF16 or kBF16.
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t add(const void* a, const void* b, void* out, int dtype, size_t n, cudaStream_t stream);

cudaError_t bias_rows(const void* bias, void* out, int dtype, size_t n, size_t m, cudaStream_t stream);

}  // namespace kvk
