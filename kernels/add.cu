#include "add.cuh"

#include "common.cuh"
#include "elem.cuh"

namespace kvk {
namespace {

struct AddOp {
  __device__ float operator()(float x, float y) const { return x + y; }
};

// out[r, c] = bias[c], one element per thread and step over the flattened [n, m] matrix.
template <class T>
__global__ void bias_rows_kernel(const T* __restrict__ bias, T* __restrict__ out, size_t n, size_t m) {
  const size_t total = n * m, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride)
    out[e] = bias[e % m];
}

}  // namespace

cudaError_t add(const void* a, const void* b, void* out, int dtype, size_t n, cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_binary(static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), n, AddOp{},
                         stream);
  });
}

cudaError_t bias_rows(const void* bias, void* out, int dtype, size_t n, size_t m, cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    if (n == 0 || m == 0) return cudaSuccess;
    constexpr unsigned kBlock = 256;
    bias_rows_kernel<T><<<grid_for(n * m, kBlock), kBlock, 0, stream>>>(static_cast<const T*>(bias),
                                                                         static_cast<T*>(out), n, m);
    return cudaGetLastError();
  });
}

}  // namespace kvk
