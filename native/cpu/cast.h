// cast: element-wise dtype conversion, the C++ reference of kernels/cast.cu.
// Floats round to nearest even; float -> integer rounds to nearest even, saturates, maps NaN to 0.
#pragma once
#include <cstddef>

#include "../core/dtype.h"

namespace kv::cpu {

void cast(const void* src, DType src_type, void* dst, DType dst_type, size_t n);

}  // namespace kv::cpu
