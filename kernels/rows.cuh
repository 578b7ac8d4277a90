// gather_rows / scatter_rows: whole rows moved by index, any dtype (width in bytes).
// Reference: native/cpu/ops.h.
//   gather:  dst[i, :] = src[idx[i], :]   for i < n
//   scatter: dst[idx[i], :] = src[i, :]   for i < n
// Rows are copied 16 bytes at a time when the width and both pointers allow (8, 4, 2, 1 otherwise).
// idx values are in range (the caller checks). With repeated scatter indices one of the rows wins,
// unspecified which (the CPU reference keeps the last); tests use distinct indices.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t gather_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                        cudaStream_t stream);
cudaError_t scatter_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                         cudaStream_t stream);

}  // namespace kvk
