// swiglu: out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i], in f32 with the
// precise expf and an IEEE division (no fast-math intrinsics), rounded once to the dtype.
// out may alias gate or up. Reference: native/cpu/ops.h. dtype: kF32, kF16 or kBF16.
#pragma once
#include <cstddef>
#include <cuda_runtime.h>

namespace kvk {

cudaError_t swiglu(const void* gate, const void* up, void* out, int dtype, size_t n, cudaStream_t stream);

}  // namespace kvk
