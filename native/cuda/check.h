// Private to native/cuda/: turning CUDA runtime statuses into kv::Error, and making a device current.
// Shared by runtime.cc and ops.cc (both compiled only in the CUDA build).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../core/status.h"
#include "runtime.h"

namespace kv::cuda::detail {

inline std::string describe(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}

// Throws the kv::Error that fits a CUDA status; `what` names the operation.
inline void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  cudaGetLastError();  // clear the sticky non-fatal error so later calls are not blamed
  Code c = e == cudaErrorMemoryAllocation ? Code::OOM
           : (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice)
               ? Code::Device
               : Code::Cuda;
  fail(c, std::string(what) + " failed: " + describe(e));
}

inline void set_device(int device) {
  require_device(device);
  check(cudaSetDevice(device), "cudaSetDevice");
}

}  // namespace kv::cuda::detail
