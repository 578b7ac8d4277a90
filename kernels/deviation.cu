#include "deviation.cuh"

#include <cub/block/block_scan.cuh>

#include "../native/core/order_key.h"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

constexpr unsigned kWarpsPerBlock = 8;

template <class T>
__global__ void row_sq_diff_kernel(const T* __restrict__ a, const T* __restrict__ b, const int32_t* __restrict__ b_rows,
                                   float* __restrict__ out, size_t n, size_t w, bool accumulate) {
  const size_t row = static_cast<size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= n) return;
  const unsigned lane = threadIdx.x % 32;
  const T* ra = a + row * w;
  const T* rb = b + (b_rows ? static_cast<size_t>(b_rows[row]) : row) * w;
  float s = 0.0f;
  for (size_t c = lane; c < w; c += 32) {
    const float d = to_f32(ra[c]) - to_f32(rb[c]);
    s += d * d;
  }
  s = warp_sum(s);
  if (lane == 0) out[row] = accumulate ? out[row] + s : s;
}

constexpr unsigned kTopKThreads = 1024;

__global__ void __launch_bounds__(kTopKThreads) top_k_rows_kernel(const float* __restrict__ v, uint32_t n, uint32_t k,
                                                                 int32_t* __restrict__ out) {
  using Scan = cub::BlockScan<uint32_t, kTopKThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ uint32_t hist[256];
  __shared__ uint32_t s_prefix, s_need;
  // Radix select, 8 bits at a time from the top: `prefix` holds the known high bits of the k-th
  // largest key, `need` its rank among the keys that share them.
  uint32_t prefix = 0, mask = 0, need = k;
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (unsigned i = threadIdx.x; i < 256; i += blockDim.x) hist[i] = 0;
    __syncthreads();
    for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
      const uint32_t key = kv::float_order_key(v[i]);
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1u);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      uint32_t above = 0;
      int d = 255;
      for (; d > 0 && above + hist[d] < need; --d) above += hist[d];
      s_prefix = prefix | (static_cast<uint32_t>(d) << shift);
      s_need = need - above;
    }
    __syncthreads();
    prefix = s_prefix;
    need = s_need;
    mask |= 255u << shift;
    __syncthreads();
  }
  // Ordered compaction: every row above the k-th key, and the first `need` rows equal to it.
  uint32_t written = 0, equal_seen = 0;
  for (uint32_t base = 0; base < n; base += blockDim.x) {
    const uint32_t i = base + threadIdx.x;
    const uint32_t key = i < n ? kv::float_order_key(v[i]) : 0u;
    const uint32_t eq = i < n && key == prefix, above = i < n && key > prefix;
    uint32_t eq_rank, eq_total;
    Scan(scan).ExclusiveSum(eq, eq_rank, eq_total);
    __syncthreads();
    const uint32_t take = above || (eq && equal_seen + eq_rank < need);
    uint32_t pos, total;
    Scan(scan).ExclusiveSum(take, pos, total);
    __syncthreads();
    if (take) out[written + pos] = static_cast<int32_t>(i);
    written += total;
    equal_seen += eq_total;
  }
}

}  // namespace

cudaError_t top_k_rows(const float* v, size_t n, size_t k, int32_t* out, cudaStream_t stream) {
  if (k == 0) return cudaSuccess;
  if (k > n || n > 0x7fffffffu) return cudaErrorInvalidValue;
  top_k_rows_kernel<<<1, kTopKThreads, 0, stream>>>(v, static_cast<uint32_t>(n), static_cast<uint32_t>(k), out);
  return cudaGetLastError();
}

cudaError_t row_sq_diff(const void* a, const void* b, const int32_t* b_rows, float* out, int dtype, size_t n, size_t w,
                        bool accumulate, cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0) return cudaSuccess;
    const size_t blocks = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
    row_sq_diff_kernel<T><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), b_rows, out, n, w, accumulate);
    return cudaGetLastError();
  });
}

}  // namespace kvk
