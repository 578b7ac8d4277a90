// attention: causal grouped-query attention by absolute position. Reference: native/cpu/ops.h.
//   q[nq, hq, d], k[nk, hkv, d], v[nk, hkv, d], out[nq, hq, d] (all of `dtype`: kF32, kF16, kBF16);
//   qpos[nq], kpos[nk] int32. hq % hkv == 0; query head h reads kv head h / (hq / hkv).
//   Query i attends to exactly the keys j with kpos[j] <= qpos[i], wherever they sit in the buffer
//   (positions are arbitrary, not sorted: nothing assumes a triangle); scores = scale * q.k; softmax
//   in f32; a query that sees no key gets zeros. 1 <= d <= 256.
//
// Every path is an online softmax (running max and sum in f32, scores in the log2 domain, exp2f)
// over tiles of keys; a key tile whose smallest position exceeds every query position of the block
// is skipped without being loaded. Paths, chosen per call by the launcher:
//   tensor core  f16/bf16, d in {32, 64, 80, 96, 128, 256}, q/k/v 16-byte and out 4-byte aligned,
//                sm_80+, nq > 4:
//                a CTA of 4 warps takes BM queries x 1 head, BM = 128 for d <= 128 (32 rows a warp:
//                each K/V fragment read from shared memory feeds two m16 tiles) and 64 for d = 256
//                or nq <= 64; CTAs are ordered heads-fastest, last query block first. Key tiles of 64
//                (32 for d = 256) are double-buffered in padded shared memory via cp.async, with one
//                barrier per tile; S = Q K^T and O += P V with mma.sync m16n8k16 (f32 accumulators;
//                P stays in registers, rounded to f16/bf16, as the A operand of the second product).
//                Per-tile (min, max) key positions come from a pre-pass into the workspace: a tile
//                no query of the CTA can see is never loaded, a warp skips a tile none of its rows
//                sees, and tiles every row of the warp sees fully skip the per-element mask.
//   wgmma        the tensor-core case with d = 128, nq > 64, scale > 0, on a compute capability 9.0 device running
//                the build's sm_90a code (attention_wgmma.cuh): a CTA of two warpgroups takes 128
//                queries x 1 head; key tiles of 128 in 128-byte-swizzled shared memory (cp.async,
//                K double- and V triple-buffered); S = Q K^T and O += P V by wgmma m64n128k16, a
//                tile's P V running under the next tile's softmax. Same tile skipping and splits as
//                the tensor-core path. KVLAB_NO_WGMMA=1 turns it off.
//   tiled f32    nq > 16 where the tensor-core path does not apply (f32, other head dims, unaligned
//                pointers): a CTA of 128 threads takes 32 queries x 1 head and loops over tiles of
//                32 keys held as f32 in shared memory; 4 threads per query row, f32 FMA throughout.
//                Needs up to 101 KiB of shared memory (d = 256); where the device has less, decode
//                serves every nq.
//   decode, grouped  f16/bf16, d in {64, 128}, hq / hkv in {1, 2, 4, 8}, 16-byte aligned q/k/v, and
//                nq as for decode below: a CTA of 4 warps per (query, kv head, split) serves the G query
//                heads of its kv head; a key row's 16-byte chunks spread over d / 8 lanes, each lane
//                keeps 4 key steps of K and V loads in flight (2 for G = 8) and its lane group runs
//                its own online softmax; the CTA merges the groups in a fixed order. Tiles of 32
//                keys, splits of at least 64.
//   decode       nq <= 4 (tensor-core case) or <= 16: a CTA of 128 threads per (query, head, split);
//                tiles of 128 keys, one thread per key for the score (16-byte loads of K straight
//                from global memory); for P.V each thread owns 16 bytes of head dims and groups of
//                threads take every G-th key, four loads in flight.
// When the CTAs of a path would not fill the GPU (fewer than 2 per multiprocessor, 4 for decode),
// keys are split over more CTAs: each writes an unnormalised partial (max, sum, accumulator, f32)
// to the workspace, and a second kernel combines the splits in a fixed order (deterministic).
// Without the workspace the launcher does not split.
// The decode kernels (grouped) and the combine are launched with programmatic dependent launch
// (pdl.cuh): each may start while the kernel before it drains and waits for it before reading.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

struct AttentionArgs {
  const void* q;
  const void* k;
  const void* v;
  int dtype;
  const int32_t* qpos;
  const int32_t* kpos;
  void* out;
  size_t nq, nk, hq, hkv, d;
  float scale;
};

// Bytes of device workspace attention() will use for these arguments on the current device: the
// tensor-core path's key-tile position ranges plus, when keys are split, the partials (0 for the
// other paths without a split). Passing less (or none) is allowed: the launcher then does not split
// (correct, but may leave most of the GPU idle for small nq) and finds tile ranges in the kernel.
size_t attention_workspace_bytes(const AttentionArgs& a);

cudaError_t attention(const AttentionArgs& a, void* workspace, size_t workspace_bytes, cudaStream_t stream);

}  // namespace kvk
