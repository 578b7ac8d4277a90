#include "embedding.cuh"

#include "common.cuh"
#include "elem.cuh"
#include "rows.cuh"

namespace kvk {
namespace {

template <class S, class D>
__global__ void embedding_convert_kernel(const int32_t* __restrict__ ids, size_t n, const S* __restrict__ table,
                                         size_t dim, D* __restrict__ out) {
  const size_t total = n * dim, stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  for (size_t e = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += stride) {
    size_t r = e / dim, c = e - r * dim;
    out[e] = from_f32<D>(to_f32(table[static_cast<size_t>(static_cast<uint32_t>(ids[r])) * dim + c]));
  }
}

size_t float_size(int t) { return t == kF32 ? 4 : 2; }

}  // namespace

cudaError_t embedding(const int32_t* ids, size_t n, const void* table, int table_type, size_t dim, void* out,
                      int out_type, cudaStream_t stream) {
  auto is_float = [](int t) { return t == kF32 || t == kF16 || t == kBF16; };
  if (!is_float(table_type) || !is_float(out_type)) return cudaErrorInvalidValue;
  if (n == 0 || dim == 0) return cudaSuccess;
  if (table_type == out_type) return gather_rows(table, ids, out, n, dim * float_size(table_type), stream);
  return dispatch_float(table_type, [&](auto stag) {
    using S = decltype(stag);
    return dispatch_float(out_type, [&](auto dtag) {
      using D = decltype(dtag);
      constexpr unsigned kBlock = 256;
      embedding_convert_kernel<S, D><<<grid_for(n * dim, kBlock), kBlock, 0, stream>>>(
          ids, n, static_cast<const S*>(table), dim, static_cast<D*>(out));
      return cudaGetLastError();
    });
  });
}

}  // namespace kvk
