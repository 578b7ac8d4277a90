#include "rows.cuh"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

// One element of V per thread and step over the flattened [n, w] rows (w counted in V units).
template <class V, bool kScatter>
__global__ void rows_kernel(const V* __restrict__ src, const int32_t* __restrict__ idx, V* __restrict__ dst,
                            size_t n, size_t w) {
  const size_t total = n * w, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    size_t r = e / w, c = e - r * w;
    size_t other = static_cast<size_t>(static_cast<uint32_t>(idx[r])) * w + c;
    if (kScatter) dst[other] = src[e];
    else dst[e] = src[other];
  }
}

template <bool kScatter>
cudaError_t launch_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width,
                        cudaStream_t stream) {
  if (n == 0 || width == 0) return cudaSuccess;
  if (!src || !idx || !dst) return cudaErrorInvalidValue;
  constexpr unsigned kBlock = 256;
  auto go = [&](auto tag) {
    using V = decltype(tag);
    size_t w = width / sizeof(V);
    rows_kernel<V, kScatter><<<grid_for(n * w, kBlock), kBlock, 0, stream>>>(
        static_cast<const V*>(src), idx, static_cast<V*>(dst), n, w);
    return cudaGetLastError();
  };
  auto fits = [&](size_t b) { return width % b == 0 && aligned_to(src, b) && aligned_to(dst, b); };
  if (fits(16)) return go(uint4{});
  if (fits(8)) return go(uint2{});
  if (fits(4)) return go(uint32_t{});
  if (fits(2)) return go(uint16_t{});
  return go(uint8_t{});
}

}  // namespace

cudaError_t gather_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                        cudaStream_t stream) {
  return launch_rows<false>(src, idx, dst, n, width_bytes, stream);
}

cudaError_t scatter_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                         cudaStream_t stream) {
  return launch_rows<true>(src, idx, dst, n, width_bytes, stream);
}

}  // namespace kvk
