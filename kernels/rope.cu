#include "rope.cuh"

#include "common.cuh"
#include "elem.cuh"
#include "pdl.cuh"

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

// Block (x, y) takes tokens x, x + gridDim.x, ... and, of the token's heads listed as q's, then k's,
// then v's, those in [y * hpb, (y + 1) * hpb): q's heads rotated in place, k's rotated straight into
// the cache row of the token's slot, v's copied there; the same arithmetic as rope_kernel then two
// row scatters (bit for bit), in one launch instead of four. A decode step (one token) spreads its
// heads over blocks: one block did all 48 of a 7B layer's in 10 us, a chain of dependent loads.
template <class T, bool kCache>
__global__ void rope_qk_scatter_kernel(T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                                       const int32_t* __restrict__ pos, const float* __restrict__ inv_freq,
                                       const int32_t* __restrict__ slots, T* __restrict__ k_cache,
                                       T* __restrict__ v_cache, size_t n, size_t hq, size_t hkv, size_t head_dim,
                                       size_t hpb) {
  extern __shared__ float2 cs[];
  allow_dependents();
  wait_for_previous();  // q, k and v come from the projection before (PDL launch)
  const size_t half = head_dim / 2, total = hq + 2 * hkv;
  const size_t h0 = blockIdx.y * hpb, h1 = h0 + hpb < total ? h0 + hpb : total;
  const bool rotates = h0 < hq + hkv;  // uniform over the block
  for (size_t t = blockIdx.x; t < n; t += gridDim.x) {
    const float p = static_cast<float>(pos[t]);
    if (kCache && rotates) {
      for (size_t i = threadIdx.x; i < half; i += blockDim.x) {
        float s, c;
        sincosf(p * inv_freq[i], &s, &c);
        cs[i] = make_float2(c, s);
      }
      __syncthreads();
    }
    const size_t row = static_cast<size_t>(slots[t]) * hkv * head_dim;
    for (size_t e = threadIdx.x; e < (h1 - h0) * half; e += blockDim.x) {
      const size_t h = h0 + e / half, i = e % half;
      if (h >= hq + hkv) {  // v: copied
        const size_t off = (h - hq - hkv) * head_dim;
        const T* src = v + t * hkv * head_dim + off;
        v_cache[row + off + i] = src[i];
        v_cache[row + off + i + half] = src[i + half];
        continue;
      }
      float c, s, ra, rb;
      if (kCache) {
        c = cs[i].x;
        s = cs[i].y;
      } else {
        sincosf(p * inv_freq[i], &s, &c);
      }
      if (h < hq) {
        T* xh = q + (t * hq + h) * head_dim;
        rotate(to_f32(xh[i]), to_f32(xh[i + half]), c, s, &ra, &rb);
        xh[i] = from_f32<T>(ra);
        xh[i + half] = from_f32<T>(rb);
      } else {
        const T* xh = k + (t * hkv + h - hq) * head_dim;
        T* out = k_cache + row + (h - hq) * head_dim;
        rotate(to_f32(xh[i]), to_f32(xh[i + half]), c, s, &ra, &rb);
        out[i] = from_f32<T>(ra);
        out[i + half] = from_f32<T>(rb);
      }
    }
    if (kCache && rotates) __syncthreads();
  }
}

}  // namespace

cudaError_t rope_qk_scatter(void* q, const void* k, const void* v, int dtype, const int32_t* pos, const float* inv_freq,
                            const int32_t* slots, void* k_cache, void* v_cache, size_t n, size_t hq, size_t hkv,
                            size_t head_dim, cudaStream_t stream) {
  if (head_dim % 2 != 0) return cudaErrorInvalidValue;
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || head_dim == 0 || hq + hkv == 0) return cudaSuccess;
    const size_t half = head_dim / 2;
    // A few tokens: one head a block; many: every head of a token in one block.
    const size_t total = hq + 2 * hkv, hpb = n >= 64 ? total : 1;
    const unsigned threads = static_cast<unsigned>(hpb * half >= kBlock ? kBlock : (hpb * half + 31) / 32 * 32);
    const dim3 grid(static_cast<unsigned>(n < 65535u * 16u ? n : 65535u * 16u), static_cast<unsigned>((total + hpb - 1) / hpb));
    const bool cached = half <= kMaxCachedHalf;
    return launch_pdl(cached ? rope_qk_scatter_kernel<T, true> : rope_qk_scatter_kernel<T, false>, grid, dim3(threads),
                      cached ? half * sizeof(float2) : 0, stream, static_cast<T*>(q), static_cast<const T*>(k),
                      static_cast<const T*>(v), pos, inv_freq, slots, static_cast<T*>(k_cache),
                      static_cast<T*>(v_cache), n, hq, hkv, head_dim, hpb);
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
