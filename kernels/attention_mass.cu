#include "attention_mass.cuh"

#include <climits>

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

constexpr unsigned kStatsThreads = 256;
constexpr unsigned kMassThreads = 256;
// Shared memory the mass kernel stages a tile of pairs in (their f32 q rows, stats and positions).
constexpr size_t kMassTileBytes = 32 * 1024;

// scale * q . k_row for q (f32, shared memory) and one key row: a single chain of fmaf over the head
// dims in order (16-byte loads of the key when kVec), rounded once more by the scale. Both kernels
// call this, so a score is the same float in each (the explicit fmaf / __fmul_rn leave the compiler
// nothing to contract differently).
template <class T, bool kVec>
__device__ __forceinline__ float score(const float* __restrict__ qs, const T* __restrict__ kr, int d, float scale) {
  float acc = 0.0f;
  if (kVec) {
    constexpr int V = kVec16<T>;
    for (int c = 0; c < d; c += V) {
      float x[V];
      load16(kr + c, x);
#pragma unroll
      for (int e = 0; e < V; ++e) acc = fmaf(qs[c + e], x[e], acc);
    }
  } else {
    for (int c = 0; c < d; ++c) acc = fmaf(qs[c], to_f32(kr[c]), acc);
  }
  return __fmul_rn(acc, scale);
}

// One CTA per (query, head) pair; the CTAs of one kv head's pairs are adjacent (kv head slowest,
// then query, then the heads of the group). stats[i * hq + h] = (M, Z): the largest visible score and
// the sum of exp(score - M) over the visible keys; (-inf, 0) where the query sees no key.
template <class T, bool kVec>
__global__ void __launch_bounds__(kStatsThreads)
    attention_mass_stats_kernel(const T* __restrict__ q, const T* __restrict__ k, const int32_t* __restrict__ qpos,
                                const int32_t* __restrict__ kpos, float2* __restrict__ stats, size_t nq, size_t nk,
                                int hq, int hkv, int d, float scale) {
  extern __shared__ float qs[];  // [d]
  __shared__ float red[33];
  const int group = hq / hkv;
  const size_t b = blockIdx.x, per_kv = nq * static_cast<size_t>(group);
  const int g = static_cast<int>(b / per_kv);
  const size_t i = (b % per_kv) / group;
  const int h = g * group + static_cast<int>(b % group);
  const size_t pair = i * hq + h;
  for (int c = threadIdx.x; c < d; c += blockDim.x) qs[c] = to_f32(q[pair * d + c]);
  __syncthreads();
  const int32_t qp = qpos[i];
  float m = -INFINITY, s = 0.0f;
  for (size_t j = threadIdx.x; j < nk; j += kStatsThreads) {
    if (kpos[j] > qp) continue;
    const float l = score<T, kVec>(qs, k + (j * hkv + g) * d, d, scale);
    if (l > m) {
      s = s * expf(m - l) + 1.0f;  // m = -inf on the first visible key: s = 0 * 0 + 1
      m = l;
    } else {
      s += expf(l - m);
    }
  }
  const float M = block_max(m, red);
  const float part = m == -INFINITY ? 0.0f : s * expf(m - M);
  const float Z = block_sum(part, red);
  if (threadIdx.x == 0) stats[pair] = make_float2(M, Z);
}

// One thread per key j: out[j] = sum over the pairs p = i * hq + h in order of exp(score - M_p) / Z_p,
// where query i sees key j and Z_p > 0. Tiles of `tile` pairs (their q rows as f32, stats and query
// positions) are staged in shared memory by the whole CTA.
template <class T, bool kVec>
__global__ void __launch_bounds__(kMassThreads)
    attention_mass_sum_kernel(const T* __restrict__ q, const T* __restrict__ k, const int32_t* __restrict__ qpos,
                              const int32_t* __restrict__ kpos, const float2* __restrict__ stats, float* __restrict__ out,
                              size_t nq, size_t nk, int hq, int hkv, int d, float scale, int tile) {
  extern __shared__ float2 smem2[];
  float2* st = smem2;                                   // [tile]
  int32_t* qp = reinterpret_cast<int32_t*>(st + tile);  // [tile]
  float* qs = reinterpret_cast<float*>(qp + tile);      // [tile][d]
  const int group = hq / hkv;
  const size_t j = static_cast<size_t>(blockIdx.x) * kMassThreads + threadIdx.x;
  const bool live = j < nk;
  const int32_t kp = live ? kpos[j] : INT_MAX;
  const size_t pairs = nq * hq;
  float acc = 0.0f;
  for (size_t p0 = 0; p0 < pairs; p0 += tile) {
    const int n = static_cast<int>(pairs - p0 < static_cast<size_t>(tile) ? pairs - p0 : tile);
    __syncthreads();  // the previous tile is no longer read
    const T* qt = q + p0 * d;
    for (int t = threadIdx.x; t < n * d; t += blockDim.x) qs[t] = to_f32(qt[t]);
    for (int t = threadIdx.x; t < n; t += blockDim.x) {
      st[t] = stats[p0 + t];
      qp[t] = qpos[(p0 + t) / hq];
    }
    __syncthreads();
    if (!live) continue;
    for (int t = 0; t < n; ++t) {
      const float2 mz = st[t];
      if (kp > qp[t] || mz.y == 0.0f) continue;  // not visible to the query, or the pair sees no key
      const int g = static_cast<int>((p0 + t) % hq) / group;
      const float l = score<T, kVec>(qs + static_cast<size_t>(t) * d, k + (j * hkv + g) * d, d, scale);
      acc += expf(l - mz.x) / mz.y;
    }
  }
  if (live) out[j] = acc;
}

template <class T, bool kVec>
cudaError_t launch(const T* q, const T* k, const int32_t* qpos, const int32_t* kpos, float* out, size_t nq, size_t nk,
                   int hq, int hkv, int d, float scale, float2* stats, cudaStream_t stream) {
  const size_t pairs = nq * hq;
  if (pairs > 0) {
    attention_mass_stats_kernel<T, kVec><<<static_cast<unsigned>(pairs), kStatsThreads, d * sizeof(float), stream>>>(
        q, k, qpos, kpos, stats, nq, nk, hq, hkv, d, scale);
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
  }
  const size_t per_pair = sizeof(float2) + sizeof(int32_t) + d * sizeof(float);
  const size_t cap = kMassTileBytes / per_pair > 0 ? kMassTileBytes / per_pair : 1;
  const int tile = static_cast<int>(pairs == 0 ? 1 : pairs < cap ? pairs : cap);
  const size_t smem = tile * per_pair;  // <= kMassTileBytes (d <= 4096 keeps one pair within it)
  const size_t blocks = (nk + kMassThreads - 1) / kMassThreads;
  attention_mass_sum_kernel<T, kVec><<<static_cast<unsigned>(blocks), kMassThreads, smem, stream>>>(
      q, k, qpos, kpos, stats, out, nq, nk, hq, hkv, d, scale, tile);
  return cudaGetLastError();
}

}  // namespace

size_t attention_mass_workspace_bytes(size_t nq, size_t hq) { return nq * hq * sizeof(float2); }

cudaError_t attention_mass(const void* q, const void* k, int dtype, const int32_t* qpos, const int32_t* kpos, float* out,
                           size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream) {
  if (d == 0 || d > kAttentionMassMaxHeadDim || hkv == 0 || hq == 0 || hq % hkv != 0 || hq > INT_MAX)
    return cudaErrorInvalidValue;
  if (nq > static_cast<size_t>(INT_MAX) / hq || (nk + kMassThreads - 1) / kMassThreads > static_cast<size_t>(INT_MAX))
    return cudaErrorInvalidValue;
  if (nk == 0) return cudaSuccess;
  if (nq > 0 && (!workspace || workspace_bytes < attention_mass_workspace_bytes(nq, hq))) return cudaErrorInvalidValue;
  float2* stats = static_cast<float2*>(workspace);
  const int ihq = static_cast<int>(hq), ihkv = static_cast<int>(hkv), id = static_cast<int>(d);
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* tq = static_cast<const T*>(q);
    const T* tk = static_cast<const T*>(k);
    if (d % kVec16<T> == 0 && aligned_to(k, 16))
      return launch<T, true>(tq, tk, qpos, kpos, out, nq, nk, ihq, ihkv, id, scale, stats, stream);
    return launch<T, false>(tq, tk, qpos, kpos, out, nq, nk, ihq, ihkv, id, scale, stats, stream);
  });
}

}  // namespace kvk
