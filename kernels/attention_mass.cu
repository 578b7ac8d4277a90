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
// The mass kernel's grid aims at this many CTAs, splitting the pairs into at most kMassMaxSplits ranges.
constexpr size_t kMassTargetBlocks = 1024;
constexpr size_t kMassMaxSplits = 64;

// scale * q . k_row for q (f32, shared memory) and one key row: a single chain of fmaf over the head
// dims in order (16-byte loads of the key when kVec), rounded once more by the scale. Both kernels
// call this, so a score is the same float in each (the explicit fmaf / __fmul_rn leave the compiler
// nothing to contract differently).
template <class T, bool kVec>
__device__ __forceinline__ float score(const float* __restrict__ qs, const T* __restrict__ kr, int d, float scale) {
  float acc = 0.0f;
  if (kVec) {
    constexpr int V = kVec16<T>;
#pragma unroll 4
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

// One thread per key j and split y (blockIdx.y): out[y * nk + j] = sum over the pairs p of the split's
// range [y * per, (y + 1) * per), in order (p = i * hq + h), of exp(score - M_p) / Z_p, where query i
// sees key j and Z_p > 0. Tiles of `tile` pairs (their q rows as f32, stats and query positions) are
// staged in shared memory by the whole CTA. With one split, out is the result; with more, partials.
template <class T, bool kVec>
__global__ void __launch_bounds__(kMassThreads)
    attention_mass_sum_kernel(const T* __restrict__ q, const T* __restrict__ k, const int32_t* __restrict__ qpos,
                              const int32_t* __restrict__ kpos, const float2* __restrict__ stats, float* __restrict__ out,
                              size_t nq, size_t nk, int hq, int hkv, int d, float scale, int tile, size_t per) {
  extern __shared__ float2 smem2[];
  float2* st = smem2;                                   // [tile]
  int32_t* qp = reinterpret_cast<int32_t*>(st + tile);  // [tile]
  float* qs = reinterpret_cast<float*>(qp + tile);      // [tile][d]
  const int group = hq / hkv;
  const size_t j = static_cast<size_t>(blockIdx.x) * kMassThreads + threadIdx.x;
  const bool live = j < nk;
  const int32_t kp = live ? kpos[j] : INT_MAX;
  const size_t all_pairs = nq * hq, first = blockIdx.y * per;
  const size_t pairs = first + per < all_pairs ? first + per : all_pairs;
  float acc = 0.0f;
  for (size_t p0 = first; p0 < pairs; p0 += tile) {
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
  if (live) out[blockIdx.y * nk + j] = acc;
}

// out[j] = the splits' partials of key j added in split order.
__global__ void __launch_bounds__(kMassThreads)
    attention_mass_reduce_kernel(const float* __restrict__ partial, float* __restrict__ out, size_t nk, int splits) {
  const size_t j = static_cast<size_t>(blockIdx.x) * kMassThreads + threadIdx.x;
  if (j >= nk) return;
  float acc = 0.0f;
  for (int y = 0; y < splits; ++y) acc += partial[y * nk + j];
  out[j] = acc;
}

// Splits of the pairs: enough CTAs to fill the GPU when the keys alone give few (a question's 1024
// pairs over 3000 keys would run on 13 SMs), a function of the sizes only so the bits never change.
size_t mass_splits(size_t pairs, size_t nk) {
  if (pairs == 0) return 1;
  const size_t key_blocks = (nk + kMassThreads - 1) / kMassThreads;
  size_t splits = (kMassTargetBlocks + key_blocks - 1) / key_blocks;
  if (splits > kMassMaxSplits) splits = kMassMaxSplits;
  if (splits > pairs) splits = pairs;
  return splits < 1 ? 1 : splits;
}

template <class T, bool kVec>
cudaError_t launch(const T* q, const T* k, const int32_t* qpos, const int32_t* kpos, float* out, size_t nq, size_t nk,
                   int hq, int hkv, int d, float scale, float2* stats, float* partial, cudaStream_t stream) {
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
  const size_t splits = mass_splits(pairs, nk), per = (pairs + splits - 1) / splits;
  attention_mass_sum_kernel<T, kVec><<<dim3(static_cast<unsigned>(blocks), static_cast<unsigned>(splits)), kMassThreads, smem, stream>>>(
      q, k, qpos, kpos, stats, splits == 1 ? out : partial, nq, nk, hq, hkv, d, scale, tile, per == 0 ? 1 : per);
  if (splits == 1) return cudaGetLastError();
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  attention_mass_reduce_kernel<<<static_cast<unsigned>(blocks), kMassThreads, 0, stream>>>(partial, out, nk, static_cast<int>(splits));
  return cudaGetLastError();
}

}  // namespace

size_t attention_mass_workspace_bytes(size_t nq, size_t hq, size_t nk) {
  const size_t pairs = nq * hq, splits = mass_splits(pairs, nk);
  return pairs * sizeof(float2) + (splits > 1 ? splits * nk * sizeof(float) : 0);
}

cudaError_t attention_mass(const void* q, const void* k, int dtype, const int32_t* qpos, const int32_t* kpos, float* out,
                           size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream) {
  if (d == 0 || d > kAttentionMassMaxHeadDim || hkv == 0 || hq == 0 || hq % hkv != 0 || hq > INT_MAX)
    return cudaErrorInvalidValue;
  if (nq > static_cast<size_t>(INT_MAX) / hq || (nk + kMassThreads - 1) / kMassThreads > static_cast<size_t>(INT_MAX))
    return cudaErrorInvalidValue;
  if (nk == 0) return cudaSuccess;
  if (nq > 0 && (!workspace || workspace_bytes < attention_mass_workspace_bytes(nq, hq, nk))) return cudaErrorInvalidValue;
  float2* stats = static_cast<float2*>(workspace);
  float* partial = reinterpret_cast<float*>(stats + nq * hq);  // float2 then float: stays 4-byte aligned
  const int ihq = static_cast<int>(hq), ihkv = static_cast<int>(hkv), id = static_cast<int>(d);
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* tq = static_cast<const T*>(q);
    const T* tk = static_cast<const T*>(k);
    if (d % kVec16<T> == 0 && aligned_to(k, 16))
      return launch<T, true>(tq, tk, qpos, kpos, out, nq, nk, ihq, ihkv, id, scale, stats, partial, stream);
    return launch<T, false>(tq, tk, qpos, kpos, out, nq, nk, ihq, ihkv, id, scale, stats, partial, stream);
  });
}

}  // namespace kvk
