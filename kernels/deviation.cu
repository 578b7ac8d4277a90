#include "deviation.cuh"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

constexpr unsigned kWarpsPerBlock = 8;

template <class T>
__global__ void row_sq_diff_kernel(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ out,
                                   size_t n, size_t w, bool accumulate) {
  const size_t row = static_cast<size_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  if (row >= n) return;
  const unsigned lane = threadIdx.x % 32;
  const T* ra = a + row * w;
  const T* rb = b + row * w;
  float s = 0.0f;
  for (size_t c = lane; c < w; c += 32) {
    const float d = to_f32(ra[c]) - to_f32(rb[c]);
    s += d * d;
  }
  s = warp_sum(s);
  if (lane == 0) out[row] = accumulate ? out[row] + s : s;
}

}  // namespace

cudaError_t row_sq_diff(const void* a, const void* b, float* out, int dtype, size_t n, size_t w, bool accumulate,
                        cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0) return cudaSuccess;
    const size_t blocks = (n + kWarpsPerBlock - 1) / kWarpsPerBlock;
    row_sq_diff_kernel<T><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
        static_cast<const T*>(a), static_cast<const T*>(b), out, n, w, accumulate);
    return cudaGetLastError();
  });
}

}  // namespace kvk
