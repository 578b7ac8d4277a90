#include "swiglu.cuh"

#include "elem.cuh"

namespace kvk {
namespace {

struct SwigluOp {
  __device__ float operator()(float g, float u) const { return g / (1.0f + expf(-g)) * u; }
};

}  // namespace

cudaError_t swiglu(const void* gate, const void* up, void* out, int dtype, size_t n, cudaStream_t stream) {
  return dispatch_float(dtype, [&](auto tag) {
    using T = decltype(tag);
    return launch_binary(static_cast<const T*>(gate), static_cast<const T*>(up), static_cast<T*>(out), n,
                         SwigluOp{}, stream);
  });
}

}  // namespace kvk
