#include "sample.cuh"

#include <climits>

#include "elem.cuh"

namespace kvk {
namespace {

constexpr int kN = 1024;       // lanes of the procedure = threads of the block
constexpr int kLd = kN + 1;    // row stride of the lane-interleaved e array

// e of lane t's i-th element (index t*C + i) lives at E[i * kLd + t]: every pass (each lane
// walking its own chunk in order) touches consecutive words across a warp, in shared memory (no
// bank conflicts) or in the global scratch (coalesced).

// (value, index) of the warp's maximum, the lowest index among equal values, in every lane.
__device__ __forceinline__ void warp_argmax(float& v, int& i) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, v, o);
    const int oi = __shfl_xor_sync(0xffffffffu, i, o);
    if (ov > v || (ov == v && oi < i)) {
      v = ov;
      i = oi;
    }
  }
}

__device__ __forceinline__ float tree32_down(float v) {  // tree32 of the warp's lanes, in lane 0
#pragma unroll
  for (int s = 16; s > 0; s >>= 1) v = v + __shfl_down_sync(0xffffffffu, v, s);
  return v;
}

// The block-wide part of one pass: mass = tree32 over warps of tree32 over lanes (step 3), plus
// the smallest `above` and largest `below` of all lanes. One barrier: the warp results go through
// one of two shared buffers (alternating by pass), and every warp finishes the reduction itself
// with the same shuffle tree, so all threads get the same values.
struct PassOut {
  float mass;
  unsigned above, below;
};
__device__ __forceinline__ PassOut pass_reduce(float s, unsigned above, unsigned below, float (*wsum)[32],
                                               unsigned (*wabove)[32], unsigned (*wbelow)[32], int buf) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  s = tree32_down(s);
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    above = min(above, __shfl_xor_sync(0xffffffffu, above, o));
    below = max(below, __shfl_xor_sync(0xffffffffu, below, o));
  }
  if (lane == 0) {
    wsum[buf][warp] = s;
    wabove[buf][warp] = above;
    wbelow[buf][warp] = below;
  }
  __syncthreads();
  PassOut r;
  r.mass = __shfl_sync(0xffffffffu, tree32_down(wsum[buf][lane]), 0);
  r.above = wabove[buf][lane];
  r.below = wbelow[buf][lane];
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    r.above = min(r.above, __shfl_xor_sync(0xffffffffu, r.above, o));
    r.below = max(r.below, __shfl_xor_sync(0xffffffffu, r.below, o));
  }
  return r;
}

__global__ void __launch_bounds__(kN, 1) sample_kernel(const float* __restrict__ logits, int vocab, float temperature,
                                                    float top_p, float u, int32_t* __restrict__ out_id,
                                                    float* __restrict__ gscratch) {
  extern __shared__ float dyn[];
  __shared__ float part[kN];
  __shared__ float prefix[kN + 1];
  __shared__ float wsum[2][32];
  __shared__ unsigned wabove[2][32], wbelow[2][32];
  __shared__ float wv[32];
  __shared__ int wi[32], wl[32];

  float* E = gscratch ? gscratch : dyn;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  const int C = static_cast<int>((static_cast<long long>(vocab) + kN - 1) / kN);
  const long long b0 = static_cast<long long>(t) * C < vocab ? static_cast<long long>(t) * C : vocab;
  const long long b1 = b0 + C < vocab ? b0 + C : vocab;
  const int begin = static_cast<int>(b0), len = static_cast<int>(b1 - b0);

  // 1. maximum and its first index (coalesced; NaNs never compare greater, so they never win).
  float bv = -INFINITY;
  int bi = INT_MAX;
  for (int j = t; j < vocab; j += kN) {
    const float x = logits[j];
    if (x > bv || (bi == INT_MAX && x == bv)) {
      bv = x;
      bi = j;
    }
  }
  warp_argmax(bv, bi);
  if (lane == 0) {
    wv[warp] = bv;
    wi[warp] = bi;
  }
  __syncthreads();
  float m = wv[lane];  // every warp reduces the 32 warp results the same way
  int greedy = wi[lane];
  warp_argmax(m, greedy);
  if (greedy == INT_MAX) greedy = 0;
  if (!(temperature > 0.0f) || !isfinite(m)) {
    if (t == 0) *out_id = greedy;
    return;
  }

  // 2. e[j], each lane its own chunk (the warp's writes are consecutive words).
  float* Et = E + t;
#pragma unroll 4
  for (int i = 0; i < len; ++i) Et[static_cast<size_t>(i) * kLd] = expf((logits[begin + i] - m) / temperature);
  __syncthreads();
  auto lane_sum = [&](float tau) {
    float s = 0.0f;
#pragma unroll 8
    for (int i = 0; i < len; ++i) {
      const float v = Et[static_cast<size_t>(i) * kLd];
      if (v >= tau) s = s + v;
    }
    return s;
  };

  // 4. threshold by bisection on the bit pattern: mass(from_bits(lo)) >= target, answer < hi. The
  // smallest e >= tau and the largest e < tau snap the bounds to values that occur; mass is
  // constant between them, so the answer is the same as plain bisection's.
  float thr = 0.0f;
  if (top_p < 1.0f) {
    int buf = 0;
    const float target = top_p * pass_reduce(lane_sum(0.0f), UINT_MAX, 0u, wsum, wabove, wbelow, buf).mass;
    unsigned lo = 0, hi = __float_as_uint(1.0f) + 1u;
    while (hi - lo > 1u) {
      const unsigned mid = lo + (hi - lo) / 2u;
      const float tau = __uint_as_float(mid);
      float s = 0.0f;
      unsigned above = UINT_MAX, below = 0u;
#pragma unroll 8
      for (int i = 0; i < len; ++i) {
        const float v = Et[static_cast<size_t>(i) * kLd];
        if (v >= tau) {
          s = s + v;
          above = min(above, __float_as_uint(v));
        } else if (v >= 0.0f) {
          below = max(below, __float_as_uint(v) + 1u);
        }
      }
      buf ^= 1;
      const PassOut r = pass_reduce(s, above, below, wsum, wabove, wbelow, buf);
      if (r.mass >= target) lo = r.above;  // exists: e[greedy] == 1 >= tau
      else hi = r.below != 0u ? r.below : mid;
    }
    thr = __uint_as_float(lo);
  }

  // 5. pick: sequential prefix over lane sums, then each lane walks its chunk.
  part[t] = lane_sum(thr);
  __syncthreads();
  if (t == 0) {
    float c = 0.0f;
    prefix[0] = 0.0f;
#pragma unroll 16
    for (int i = 0; i < kN; ++i) {
      c = c + part[i];
      prefix[i + 1] = c;
    }
  }
  __syncthreads();
  const float r = u * prefix[kN];
  float c = prefix[t];
  int cand = INT_MAX, last = -1;
  for (int i = 0; i < len; ++i) {
    const float v = Et[static_cast<size_t>(i) * kLd];
    if (!(v >= thr)) continue;
    c = c + v;
    if (c > r) {
      cand = begin + i;
      break;
    }
    last = begin + i;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    cand = min(cand, __shfl_xor_sync(0xffffffffu, cand, o));
    last = max(last, __shfl_xor_sync(0xffffffffu, last, o));
  }
  if (lane == 0) {
    wi[warp] = cand;
    wl[warp] = last;
  }
  __syncthreads();
  if (t == 0) {
    int best = INT_MAX, lst = -1;
    for (int w = 0; w < 32; ++w) {
      best = min(best, wi[w]);
      lst = max(lst, wl[w]);
    }
    *out_id = best != INT_MAX ? best : (lst >= 0 ? lst : greedy);
  }
}

size_t static_smem_bytes() {
  static const size_t bytes = [] {
    cudaFuncAttributes a{};
    if (cudaFuncGetAttributes(&a, sample_kernel) != cudaSuccess) {
      cudaGetLastError();
      return size_t(16384);
    }
    return a.sharedSizeBytes;
  }();
  return bytes;
}

// Bytes of the lane-interleaved e array, and whether it fits in shared memory on this device.
size_t e_bytes(size_t vocab) { return static_cast<size_t>(kLd) * ((vocab + kN - 1) / kN) * sizeof(float); }

bool e_fits_smem(size_t vocab) {
  int optin = 0;
  if (current_device_limits(nullptr, &optin, nullptr) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  return e_bytes(vocab) + static_smem_bytes() <= static_cast<size_t>(optin);
}

}  // namespace

size_t sample_scratch_bytes(size_t vocab) {
  if (vocab == 0) return 0;
  return e_fits_smem(vocab) ? 0 : e_bytes(vocab);
}

cudaError_t sample(const float* logits, size_t vocab, float temperature, float top_p, float u, int32_t* out_id,
                   void* scratch, cudaStream_t stream) {
  if (vocab == 0 || vocab > static_cast<size_t>(INT_MAX - kN) || !logits || !out_id) return cudaErrorInvalidValue;
  size_t dyn = 0;
  float* g = nullptr;
  if (temperature > 0.0f) {
    if (e_fits_smem(vocab)) {
      dyn = e_bytes(vocab);
      cudaError_t e = ensure_smem_limit(sample_kernel, dyn);
      if (e != cudaSuccess) return e;
    } else {
      if (!scratch) return cudaErrorInvalidValue;
      g = static_cast<float*>(scratch);
    }
  }
  sample_kernel<<<1, kN, dyn, stream>>>(logits, static_cast<int>(vocab), temperature, top_p, u, out_id, g);
  return cudaGetLastError();
}

}  // namespace kvk
