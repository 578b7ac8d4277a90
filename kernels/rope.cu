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

// One block per token: q's heads rotated in place, k's heads rotated straight into the cache row of
// the token's slot, v copied into its cache row; the same arithmetic as rope_kernel then two row
// scatters (bit for bit), in one launch instead of four.
template <class T, bool kCache>
__global__ void rope_qk_scatter_kernel(T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                       const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                                       const int32_t* __restrict__ slots, T* __restrict__ k_cache,
                                       T* __restrict__ v_cache, size_t n, size_t hq, size_t hkv, size_t head_dim) {
  extern __shared__ float2 cs[];
  const size_t half = head_dim / 2;
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
    auto cos_sin = [&](size_t i, float* c, float* s) {
      if (kCache) {
        *c = cs[i].x;
        *s = cs[i].y;
      } else {
        sincosf(p * inv_freq[i], s, c);
      }
    };
    T* qt = q + t * hq * head_dim;
    for (size_t e = threadIdx.x; e < hq * half; e += blockDim.x) {
      const size_t h = e / half, i = e - h * half;
      T* xh = qt + h * head_dim;
      float c, s, ra, rb;
      cos_sin(i, &c, &s);
      rotate(to_f32(xh[i]), to_f32(xh[i + half]), c, s, &ra, &rb);
      xh[i] = from_f32<T>(ra);
      xh[i + half] = from_f32<T>(rb);
    }
    const size_t row = static_cast<size_t>(slots[t]) * hkv * head_dim;
    const T* kt = k + t * hkv * head_dim;
    for (size_t e = threadIdx.x; e < hkv * half; e += blockDim.x) {
      const size_t h = e / half, i = e - h * half;
      const T* xh = kt + h * head_dim;
      T* out = k_cache + row + h * head_dim;
      float c, s, ra, rb;
      cos_sin(i, &c, &s);
      rotate(to_f32(xh[i]), to_f32(xh[i + half]), c, s, &ra, &rb);
      out[i] = from_f32<T>(ra);
      out[i + half] = from_f32<T>(rb);
    }
    const T* vt = v + t * hkv * head_dim;
    for (size_t e = threadIdx.x; e < hkv * head_dim; e += blockDim.x) v_cache[row + e] = vt[e];
    if (kCache) __syncthreads();
  }
}

}  // namespace

cudaError_t rope_qk_scatter(void* q, const void* k, const void* v, int dtype, const int32_t* pos, const float* inv_freq,
                            const int32_t* slots, void* k_cache, void* v_cache, size_t n, size_t hq, size_t hkv,
                            size_t head_dim, cudaStream_t stream) {
  if (head_dim % 2 != 0) return cudaErrorInvalidValue;
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || head_dim == 0) return cudaSuccess;
    const size_t half = head_dim / 2;
    const unsigned grid = static_cast<unsigned>(n < 65535u * 16u ? n : 65535u * 16u);
    if (half <= kMaxCachedHalf)
      rope_qk_scatter_kernel<T, true><<<grid, kBlock, half * sizeof(float2), stream>>>(
          static_cast<T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), pos, inv_freq, slots,
          static_cast<T*>(k_cache), static_cast<T*>(v_cache), n, hq, hkv, head_dim);
    else
      rope_qk_scatter_kernel<T, false><<<grid, kBlock, 0, stream>>>(
          static_cast<T*>(q), static_cast<const T*>(k), static_cast<const T*>(v), pos, inv_freq, slots,
          static_cast<T*>(k_cache), static_cast<T*>(v_cache), n, hq, hkv, head_dim);
    return cudaGetLastError();
  });
}

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
