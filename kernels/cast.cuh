// cast: element-wise dtype conversion on the device. Reference: native/cpu/cast.cc.
//   dst[i] = convert(src[i]) through f32; floats round to nearest even; float -> integer rounds to
//   nearest even, saturates, maps NaN to 0. Same dtypes: a device-to-device copy.
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t cast(const void* src, int src_type, void* dst, int dst_type, size_t n,
                 cudaStream_t stream);

}  // namespace kvk
