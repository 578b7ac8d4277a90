// A kernel's attributes on the current device (cudaFuncGetAttributes: the code the driver loaded for
// it, its registers and static shared memory), asked of the driver once per (kernel, device), since
// launchers ask on every launch.
#pragma once
#include <mutex>
#include <vector>
#include <cuda_runtime.h>

namespace kvk {

// False when the driver cannot say (its error is cleared).
inline bool kernel_attributes(const void* kernel, cudaFuncAttributes* out) {
  struct Seen {
    const void* fn;
    int dev;
    bool ok;
    cudaFuncAttributes attr;
  };
  static std::mutex mu;
  static std::vector<Seen> seen;
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  std::lock_guard<std::mutex> lock(mu);
  for (const Seen& s : seen)
    if (s.fn == kernel && s.dev == dev) {
      *out = s.attr;
      return s.ok;
    }
  Seen s{kernel, dev, false, {}};
  s.ok = cudaFuncGetAttributes(&s.attr, kernel) == cudaSuccess;
  if (!s.ok) cudaGetLastError();
  seen.push_back(s);
  *out = s.attr;
  return s.ok;
}

}  // namespace kvk
