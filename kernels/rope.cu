#include "rope.cuh"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

constexpr unsigned kBlock = 256;
constexpr size_t kMaxCachedHalf = 4096;  // cos/sin of up to 4096 frequencies in 32 KiB of shared memory

__device__ __forceinline__ void rotate(float a, float b, float c, float s, float* ra, float* rb) {
  *ra = a * c - b * s;
  *rb = b * c + a * s;
}

// kCache: cos/sin per frequency computed once per token into shared memory; otherwise per element.
template <class T, bool kCache>
__global__ void rope_kernel(T* __restrict__ x, const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                            size_t n, size_t heads, size_t head_dim) {
  extern __shared__ float2 cs[];  // (cos, sin) per frequency when kCache
  const size_t half = head_dim / 2, pairs = heads * half;
  for (size_t t = blockIdx.x; t < n; t += gridDim.x) {
    const float p = static_cast<float>(pos[t]);
    if (kCache) {
      for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
        float s, c;
        sincosf(p * inv_freq[i], &s, &c);
        cs[i] = make_float2(c, s);
      }
      __syncthreads();
    }
    T* xt = x + t * heads * head_dim;
    for (size_t e = threadIdx.x; e < pairs; e += blockDim.x) {
      const size_t h = e / half, i = e - h * half;
      T* xh = xt + h * head_dim;
      float c, s;
      if (kCache) {
        const float2 v = cs[i];
        c = v.x;
        s = v.y;
      } else {
        sincosf(p * inv_freq[i], &s, &c);
      }
      float ra, rb;
      rotate(to_f32(xh[i]), to_f32(xh[i + half]), c, s, &ra, &rb);
      xh[i] = from_f32<T>(ra);
      xh[i + half] = from_f32<T>(rb);
    }
    if (kCache) __syncthreads();
  }
}

}  // namespace

cudaError_t rope(void* x, int dtype, const int32_t* pos, const float* inv_freq, size_t n, size_t heads,
                 size_t head_dim, cudaStream_t stream) {
  if (head_dim % 2 != 0) return cudaErrorInvalidValue;
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || heads == 0 || head_dim == 0) return cudaSuccess;
    const size_t half = head_dim / 2;
    const unsigned grid = static_cast<unsigned>(n < 65535u * 16u ? n : 65535u * 16u);
    if (half <= kMaxCachedHalf)
      rope_kernel<T, true><<<grid, kBlock, half * sizeof(float2), stream>>>(static_cast<T*>(x), pos, inv_freq,
                                                                                 n, heads, head_dim);
    else
      rope_kernel<T, false><<<grid, kBlock, 0, stream>>>(static_cast<T*>(x), pos, inv_freq, n, heads, head_dim);
    return cudaGetLastError();
  });
}

}  // namespace kvk
