// Shared device-side helpers for kvlab kernels: dtype ids (the same numbering as
// native/core/dtype.h, checked by static_assert in native/cuda/runtime.cc) and grid sizing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

enum DTypeId : int { kF32 = 0, kF16 = 1, kBF16 = 2, kI8 = 3, kU8 = 4, kI32 = 5 };

// A grid for a grid-stride loop over n elements: enough blocks to fill the GPU, never zero.
inline unsigned grid_for(size_t n, unsigned block, unsigned max_blocks = 65535u * 4u) {
  size_t g = (n + block - 1) / block;
  if (g == 0) g = 1;
  return static_cast<unsigned>(g < max_blocks ? g : max_blocks);
}

}  // namespace kvk
