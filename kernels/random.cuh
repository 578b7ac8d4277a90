// fill_uniform: out[i] = lo + (hi - lo) * u(seed, i), u in [0, 1) from a counter-based hash, so any
// element is reproducible on its own and the CPU reference (native/cpu/random.cc) gives the same bits.
//   u(seed, i) = (splitmix64(seed * 0x9E3779B97F4A7C15 + i) >> 40) * 2^-24, rounded once into the dtype.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t fill_uniform(void* out, int dtype, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream);

}  // namespace kvk
