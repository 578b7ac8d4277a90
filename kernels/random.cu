#include "random.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common.cuh"

namespace kvk {
namespace {

__device__ __forceinline__ uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

template <typename T>
__device__ __forceinline__ T from_float(float x);
template <> __device__ __forceinline__ float from_float<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_float<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

template <typename T>
__global__ void fill_uniform_kernel(T* out, size_t n, uint64_t base, float lo, float span) {
  size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    float u = static_cast<float>(splitmix64(base + i) >> 40) * (1.0f / 16777216.0f);
    out[i] = from_float<T>(__fadd_rn(lo, __fmul_rn(span, u)));  // no FMA contraction: match the CPU
  }
}

}  // namespace

cudaError_t fill_uniform(void* out, int dtype, size_t n, uint64_t seed, float lo, float hi, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  constexpr unsigned kBlock = 256;
  unsigned grid = grid_for(n, kBlock);
  uint64_t base = seed * 0x9E3779B97F4A7C15ull;
  float span = hi - lo;
  switch (dtype) {
    case kF32: fill_uniform_kernel<<<grid, kBlock, 0, stream>>>(static_cast<float*>(out), n, base, lo, span); break;
    case kF16: fill_uniform_kernel<<<grid, kBlock, 0, stream>>>(static_cast<__half*>(out), n, base, lo, span); break;
    case kBF16: fill_uniform_kernel<<<grid, kBlock, 0, stream>>>(static_cast<__nv_bfloat16*>(out), n, base, lo, span); break;
    default: return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace kvk
