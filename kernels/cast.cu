#include "cast.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cstdint>

#include "common.cuh"

namespace kvk {
namespace {

__device__ __forceinline__ float load(const void* p, int t, size_t i) {
  switch (t) {
    case kF32: return static_cast<const float*>(p)[i];
    case kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case kI8: return static_cast<float>(static_cast<const int8_t*>(p)[i]);
    case kU8: return static_cast<float>(static_cast<const uint8_t*>(p)[i]);
    default: return static_cast<float>(static_cast<const int32_t*>(p)[i]);
  }
}

__device__ __forceinline__ float clamp_round(float x, float lo, float hi) {
  if (isnan(x)) return 0.0f;
  return rintf(fminf(fmaxf(x, lo), hi));
}

__device__ __forceinline__ void store(void* p, int t, size_t i, float x) {
  switch (t) {
    case kF32: static_cast<float*>(p)[i] = x; break;
    case kF16: static_cast<__half*>(p)[i] = __float2half_rn(x); break;
    case kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(x); break;
    case kI8: static_cast<int8_t*>(p)[i] = static_cast<int8_t>(clamp_round(x, -128.0f, 127.0f)); break;
    case kU8: static_cast<uint8_t*>(p)[i] = static_cast<uint8_t>(clamp_round(x, 0.0f, 255.0f)); break;
    default: {
      int32_t v;
      if (isnan(x)) v = 0;
      else if (x >= 2147483648.0f) v = INT32_MAX;
      else if (x <= -2147483648.0f) v = INT32_MIN;
      else v = static_cast<int32_t>(rintf(x));
      static_cast<int32_t*>(p)[i] = v;
    }
  }
}

// The dtype pair is uniform across the grid, so the switches do not diverge.
__global__ void cast_kernel(const void* src, int st, void* dst, int dt, size_t n) {
  size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    store(dst, dt, i, load(src, st, i));
}

size_t elem_size(int t) { return t == kF32 || t == kI32 ? 4 : (t == kF16 || t == kBF16 ? 2 : 1); }

}  // namespace

cudaError_t cast(const void* src, int src_type, void* dst, int dst_type, size_t n,
                 cudaStream_t stream) {
  if (src_type < kF32 || src_type > kI32 || dst_type < kF32 || dst_type > kI32)
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  if (src_type == dst_type)
    return cudaMemcpyAsync(dst, src, n * elem_size(src_type), cudaMemcpyDeviceToDevice, stream);
  constexpr unsigned kBlock = 256;
  cast_kernel<<<grid_for(n, kBlock), kBlock, 0, stream>>>(src, src_type, dst, dst_type, n);
  return cudaGetLastError();
}

}  // namespace kvk
