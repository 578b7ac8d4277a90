#include "rmsnorm.cuh"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

// kV elements per access: kVec16<T> (16 bytes) when dim % kV == 0 and every pointer is 16-byte
// aligned, else 1. Each thread touches the same columns in both passes, so out may alias x.
template <class T, int kV>
__global__ void rmsnorm_kernel(const T* x, const T* __restrict__ w, T* out, size_t n, size_t dim, float eps) {
  __shared__ float scratch[33];
  const size_t step = static_cast<size_t>(blockDim.x) * kV;
  for (size_t row = blockIdx.x; row < n; row += gridDim.x) {
    const T* xr = x + row * dim;
    T* orow = out + row * dim;
    float ss = 0.0f;
    for (size_t c = static_cast<size_t>(threadIdx.x) * kV; c < dim; c += step) {
      float v[kV];
      if (kV > 1) load16(xr + c, v);
      else v[0] = to_f32(xr[c]);
#pragma unroll
      for (int i = 0; i < kV; ++i) ss += v[i] * v[i];
    }
    ss = block_sum(ss, scratch);
    const float r = 1.0f / sqrtf(ss / static_cast<float>(dim) + eps);
    for (size_t c = static_cast<size_t>(threadIdx.x) * kV; c < dim; c += step) {
      float v[kV], g[kV];
      if (kV > 1) {
        load16(xr + c, v);
        load16(w + c, g);
      } else {
        v[0] = to_f32(xr[c]);
        g[0] = to_f32(w[c]);
      }
#pragma unroll
      for (int i = 0; i < kV; ++i) v[i] = v[i] * r * g[i];
      if (kV > 1) store16(orow + c, v);
      else orow[c] = from_f32<T>(v[0]);
    }
  }
}

}  // namespace

cudaError_t rmsnorm(const void* x, const void* w, void* out, int dtype, size_t n, size_t dim, float eps,
                    cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || dim == 0) return cudaSuccess;
    const T* xt = static_cast<const T*>(x);
    const T* wt = static_cast<const T*>(w);
    T* ot = static_cast<T*>(out);
    constexpr int V = kVec16<T>;
    const bool vec = dim % V == 0 && aligned_to(x, 16) && aligned_to(w, 16) && aligned_to(out, 16);
    const size_t per_thread = vec ? V : 1;
    // Enough threads for one access per thread per row, a multiple of 32 between 32 and 256.
    size_t threads = (dim / per_thread + 31) / 32 * 32;
    threads = threads < 32 ? 32 : (threads > 256 ? 256 : threads);
    const unsigned grid = static_cast<unsigned>(n < 65535u * 16u ? n : 65535u * 16u);
    if (vec) rmsnorm_kernel<T, V><<<grid, static_cast<unsigned>(threads), 0, stream>>>(xt, wt, ot, n, dim, eps);
    else rmsnorm_kernel<T, 1><<<grid, static_cast<unsigned>(threads), 0, stream>>>(xt, wt, ot, n, dim, eps);
    return cudaGetLastError();
  });
}

}  // namespace kvk
