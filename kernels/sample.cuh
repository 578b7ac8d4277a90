// sample: picks a token id from logits[vocab] (f32) on the device, in one block of 1024 threads.
// Reference: native/cpu/ops.h (sample). The exact procedure below is what the kernel computes; a CPU
// that follows it step by step (same lanes, same order of additions, f32 throughout, no FMA
// contraction or reassociation) gets the same id, except where its expf and CUDA's expf round one
// e[j] differently and that flips a comparison: a near-tie of float rounding.
//
//   N = 1024 lanes; C = ceil(vocab / N); lane t owns the contiguous chunk [t*C, min((t+1)*C, vocab)).
//   1. m = max of the non-NaN logits; g = the first index j with logits[j] == m (0 when every logit
//      is NaN). If !(temperature > 0) or m is not finite, the answer is g (greedy).
//   2. e[j] = expf((logits[j] - m) / temperature)   (IEEE subtraction and division; e[g] == 1,
//      e in [0, 1], NaN logits give NaN e, which every comparison below excludes).
//   3. lane_sum(t, tau) = the sum, in increasing j from 0.0f, of e[j] over lane t's chunk with
//      e[j] >= tau. tree32(x[0..32)) = "for s = 16, 8, 4, 2, 1: x[t] = x[t] + x[t + s] for every
//      t < s", result x[0]. mass(tau) = tree32 of the 32 values w[g] = tree32(lane sums of lanes
//      32g .. 32g + 31) (lanes grouped as the kernel's warps).
//   4. Threshold: if !(top_p < 1), thr = 0 (all kept). Else target = top_p * mass(0.0f) and
//      thr = the largest float v in [0, 1] with mass(v) >= target. mass is non-increasing in v and
//      changes only at the values e[j], so thr is one of the e[j]; with target <= 0, thr = 1.
//      Any exact search finds the same thr; the kernel bisects on the bit pattern of v, snapping
//      each bound to the nearest e[j] so it stops early.
//      Kept: e[j] >= thr (ties at thr all kept; the greedy id is always kept).
//   5. Pick: P[0] = 0, P[t + 1] = P[t] + lane_sum(t, thr) (sequential over t); K = P[N]; r = u * K.
//      Each lane walks its chunk from c = P[t]: for each kept j in increasing order, c = c + e[j];
//      the first j with c > r is the lane's candidate. The answer is the candidate of the lowest
//      lane that has one (or, if no lane has one, which r < K rules out, the last kept index).
//
// The same procedure as plain C++, for the CPU reference to mirror (bits/from_bits: the uint32
// pattern of a float and back, e.g. through std::memcpy):
//
//   int32_t sample(const float* logits, size_t vocab, float temperature, float top_p, float u) {
//     const size_t N = 1024, C = (vocab + N - 1) / N;
//     float m = -INFINITY;
//     size_t g = SIZE_MAX;
//     for (size_t j = 0; j < vocab; ++j)
//       if (logits[j] > m || (g == SIZE_MAX && logits[j] == m)) { m = logits[j]; g = j; }
//     if (g == SIZE_MAX) g = 0;
//     if (!(temperature > 0.0f) || !std::isfinite(m)) return static_cast<int32_t>(g);
//     std::vector<float> e(vocab);
//     for (size_t j = 0; j < vocab; ++j) e[j] = std::exp((logits[j] - m) / temperature);
//     auto lane_sum = [&](size_t t, float tau) {
//       float s = 0.0f;
//       for (size_t j = t * C; j < std::min((t + 1) * C, vocab); ++j)
//         if (e[j] >= tau) s += e[j];
//       return s;
//     };
//     auto tree32 = [](float* x) {
//       for (size_t s = 16; s > 0; s /= 2)
//         for (size_t t = 0; t < s; ++t) x[t] = x[t] + x[t + s];
//       return x[0];
//     };
//     auto mass = [&](float tau) {
//       float w[32], x[32];
//       for (size_t g = 0; g < 32; ++g) {
//         for (size_t t = 0; t < 32; ++t) x[t] = lane_sum(32 * g + t, tau);
//         w[g] = tree32(x);
//       }
//       return tree32(w);
//     };
//     float thr = 0.0f;
//     if (top_p < 1.0f) {
//       const float target = top_p * mass(0.0f);
//       uint32_t lo = 0, hi = bits(1.0f) + 1;  // mass(from_bits(lo)) >= target; the answer is < hi
//       while (hi - lo > 1) {
//         uint32_t mid = lo + (hi - lo) / 2;
//         if (mass(from_bits(mid)) >= target) lo = mid; else hi = mid;
//       }
//       thr = from_bits(lo);
//     }
//     std::vector<float> P(N + 1, 0.0f);
//     for (size_t t = 0; t < N; ++t) P[t + 1] = P[t] + lane_sum(t, thr);
//     const float r = u * P[N];
//     size_t last = 0;
//     for (size_t t = 0; t < N; ++t) {
//       float c = P[t];
//       for (size_t j = t * C; j < std::min((t + 1) * C, vocab); ++j) {
//         if (!(e[j] >= thr)) continue;
//         c = c + e[j];
//         if (c > r) return static_cast<int32_t>(j);
//         last = j;
//       }
//     }
//     return static_cast<int32_t>(last);
//   }
//
// Cost: one coalesced pass over the logits for the maximum, one for e, at most about 30 bisection
// passes (each one read of e, warp-shuffle trees and one barrier), one for the pick. e lives in
// shared memory, lane-interleaved, when (N + 1) * C floats fit the device's opt-in limit (vocab up
// to about 39k on A100, 55k on H100), otherwise in `scratch` (global memory, same layout).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

// Bytes of device scratch sample() needs for this vocab on the current device (0 when e fits in
// shared memory).
size_t sample_scratch_bytes(size_t vocab);

// Writes the chosen id to *out_id (device memory). scratch: sample_scratch_bytes(vocab) bytes of
// device memory (may be null when that is 0). vocab in [1, 2^31 - 1024].
cudaError_t sample(const float* logits, size_t vocab, float temperature, float top_p, float u, int32_t* out_id,
                   void* scratch, cudaStream_t stream);

}  // namespace kvk
