// fill_uniform: the C++ reference of kernels/random.cu (same hash, same bits): out[i] in [lo, hi).
#pragma once
#include <cstddef>
#include <cstdint>

#include "../core/dtype.h"

namespace kv::cpu {

void fill_uniform(void* out, DType type, size_t n, uint64_t seed, float lo, float hi);

}  // namespace kv::cpu
