// attention_mass: the attention probability mass each key receives from a few queries, summed over
// the queries and heads; what CacheBlend's query-attention policy ranks context tokens by.
// Reference: native/cpu/ops.h (cpu::attention_mass).
//   q[nq, hq, d], k[nk, hkv, d] of `dtype` (kF32, kF16, kBF16); qpos[nq], kpos[nk] int32; out[nk] f32.
//   Head h reads kv head g = h / (hq / hkv). For each query i and head h,
//     p_ij = softmax over the visible keys j (kpos[j] <= qpos[i], wherever they sit in the buffer)
//            of scale * q_ih . k_jg,
//   and out[j] = sum over i, h of p_ij (0 for a key no query sees). A (query, head) that sees no key
//   contributes nothing. 1 <= d <= kAttentionMassMaxHeadDim; hq % hkv == 0.
//
// Two kernels, f32 throughout, no atomics, so the result is the same bits run to run:
//   stats  one CTA of 256 threads per (query, head) pair: q_ih in shared memory as f32, each thread
//          takes every 256th key, scores it (the same dot routine as below) and keeps its own running
//          (max, sum); a block reduction in a fixed order gives the pair's max M and sum Z, written
//          to `workspace` (float2 per pair; Z = 0 where the pair sees no key).
//   mass   one thread per key and range of pairs (blockIdx.y; enough ranges that the CTAs fill the
//          GPU when the keys alone give few, a function of nq x hq and nk only): over its pairs in
//          order (query-major, then head), tiles of q rows staged in shared memory as f32, the sum of
//          exp(score - M) / Z over the pairs that see key j; with several ranges a third kernel adds
//          the partials of each key in range order into out.
// The dot product of a score is one sequential chain of fmaf over the head dims in both kernels, so
// each score is the same float in both. Work: 2 x nq x hq x nk x d multiply-adds; K is read once per
// pair by stats (pairs of one kv head sit next to each other in the grid, so the CTAs running
// together share its rows in L2) and once per key by mass.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

constexpr size_t kAttentionMassMaxHeadDim = 4096;

// Bytes of `workspace` attention_mass needs: one float2 per (query, head) pair, then the partial
// sums (splits x nk floats) when the pairs are split.
size_t attention_mass_workspace_bytes(size_t nq, size_t hq, size_t nk);

// cudaErrorInvalidValue for a bad dtype, d outside [1, kAttentionMassMaxHeadDim], hq not a positive
// multiple of hkv, nq * hq or the key blocks beyond the grid's range, or a workspace that is too
// small. nk == 0 does nothing; nq == 0 writes zeros.
cudaError_t attention_mass(const void* q, const void* k, int dtype, const int32_t* qpos, const int32_t* kpos, float* out,
                           size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale, void* workspace,
                           size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvk
