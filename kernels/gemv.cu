#include "gemv.cuh"

#include "elem.cuh"

namespace kvk {
namespace {

template <class T, int N>
__global__ void __launch_bounds__(256) gemv_kernel(const T* __restrict__ x, const T* __restrict__ w,
                                                   const T* __restrict__ bias, T* __restrict__ out, int k, int m,
                                                   bool accumulate) {
  const int row = static_cast<int>((static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= m) return;
  constexpr int V = kVec16<T>;
  const T* wr = w + static_cast<size_t>(row) * k;
  float acc[N];
#pragma unroll
  for (int r = 0; r < N; ++r) acc[r] = 0.0f;
#pragma unroll 4
  for (int c = lane * V; c < k; c += 32 * V) {
    float wv[V];
    load16(wr + c, wv);
#pragma unroll
    for (int r = 0; r < N; ++r) {
      float xv[V];
      load16(x + static_cast<size_t>(r) * k + c, xv);
#pragma unroll
      for (int i = 0; i < V; ++i) acc[r] = fmaf(wv[i], xv[i], acc[r]);
    }
  }
#pragma unroll
  for (int r = 0; r < N; ++r) acc[r] = warp_sum(acc[r]);
  if (lane == 0) {
    const float b = bias ? to_f32(bias[row]) : 0.0f;
#pragma unroll
    for (int r = 0; r < N; ++r) {
      T* o = out + static_cast<size_t>(r) * m + row;
      *o = from_f32<T>(acc[r] + b + (accumulate ? to_f32(*o) : 0.0f));
    }
  }
}

template <class T, int N>
cudaError_t launch(const void* x, const void* w, const void* bias, void* out, int k, int m, bool accumulate,
                   cudaStream_t st) {
  constexpr unsigned kBlock = 256;  // 8 warps, 8 rows
  const unsigned grid = static_cast<unsigned>((static_cast<size_t>(m) * 32 + kBlock - 1) / kBlock);
  gemv_kernel<T, N><<<grid, kBlock, 0, st>>>(static_cast<const T*>(x), static_cast<const T*>(w),
                                             static_cast<const T*>(bias), static_cast<T*>(out), k, m, accumulate);
  return cudaGetLastError();
}

template <class T>
cudaError_t launch_rows(const void* x, const void* w, const void* bias, void* out, size_t n, int k, int m,
                        bool acc, cudaStream_t st) {
  switch (n) {
    case 1: return launch<T, 1>(x, w, bias, out, k, m, acc, st);
    case 2: return launch<T, 2>(x, w, bias, out, k, m, acc, st);
    case 3: return launch<T, 3>(x, w, bias, out, k, m, acc, st);
    case 4: return launch<T, 4>(x, w, bias, out, k, m, acc, st);
    case 5: return launch<T, 5>(x, w, bias, out, k, m, acc, st);
    case 6: return launch<T, 6>(x, w, bias, out, k, m, acc, st);
    case 7: return launch<T, 7>(x, w, bias, out, k, m, acc, st);
    case 8: return launch<T, 8>(x, w, bias, out, k, m, acc, st);
    default: return cudaErrorInvalidValue;
  }
}

size_t elem(int dtype) { return dtype == kF32 ? 4 : 2; }

}  // namespace

bool gemv_supported(const void* x, const void* w, const void* out, int dtype, size_t n, size_t k) {
  if (n == 0 || n > static_cast<size_t>(kGemvMaxRows) || k == 0 || k > (1u << 30)) return false;
  if (dtype != kF32 && dtype != kF16 && dtype != kBF16) return false;
  return (k * elem(dtype)) % 16 == 0 && aligned_to(x, 16) && aligned_to(w, 16) && aligned_to(out, 2);
}

cudaError_t gemv(const void* x, const void* w, const void* bias, void* out, int dtype, size_t n, size_t k, size_t m,
                 bool accumulate, cudaStream_t stream) {
  if (!gemv_supported(x, w, out, dtype, n, k) || m > (1u << 30)) return cudaErrorInvalidValue;
  if (m == 0) return cudaSuccess;
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_rows<T>(x, w, bias, out, n, static_cast<int>(k), static_cast<int>(m), accumulate, stream);
  });
}

}  // namespace kvk
