// gemv: out[n, m] = x[n, k] . w[m, k]^T (+ bias[m]) (+ out, with `accumulate`) for a few rows
// (n <= kGemvMaxRows), the decode shape. It is bound by reading w once, so one warp streams one
// weight row with 16-byte loads and applies it to every row of x (x is small and stays in L1/L2);
// f32 accumulation, one rounding at the store. Reference: native/cpu/matmul.cc. Needs
// k * sizeof(T) % 16 == 0 and 16-byte aligned pointers; `gemv_supported` says whether a call
// qualifies (otherwise use cuBLAS).
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

constexpr int kGemvMaxRows = 8;

bool gemv_supported(const void* x, const void* w, const void* out, int dtype, size_t n, size_t k);

cudaError_t gemv(const void* x, const void* w, const void* bias, void* out, int dtype, size_t n, size_t k, size_t m,
                 bool accumulate, cudaStream_t stream);

}  // namespace kvk
