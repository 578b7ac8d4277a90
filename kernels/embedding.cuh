// embedding: out[i, :] = table[ids[i], :] for i < n, converted from table_type to out_type
// (f32, f16 or bf16 each; through f32, rounding to nearest even). Reference: native/cpu/ops.h.
// ids are in [0, vocab) (the caller checks). Same dtypes: a row gather (kernels/rows.cu).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t embedding(const int32_t* ids, size_t n, const void* table, int table_type, size_t dim, void* out,
                      int out_type, cudaStream_t stream);

}  // namespace kvk
