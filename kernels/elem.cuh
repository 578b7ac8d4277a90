// Device-side helpers shared by the model kernels: f32 conversion of the three float element
// types, 16-byte vector access, warp and block reductions, and the dtype -> template dispatch
// every launcher uses. Every model kernel stores activations as T and computes in f32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "common.cuh"

namespace kvk {

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

template <class T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}

// Elements of T in one 16-byte access.
template <class T> constexpr int kVec16 = static_cast<int>(16 / sizeof(T));

// kVec16<T> elements packed in 16 bytes, converted to f32.
template <class T> __device__ __forceinline__ void unpack16(const uint4& raw, float* out) {
  const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec16<T>; ++i) out[i] = to_f32(e[i]);
}

// 16-byte load/store of kVec16<T> elements converted to/from f32. p must be 16-byte aligned.
template <class T> __device__ __forceinline__ void load16(const T* p, float* out) {
  unpack16<T>(*reinterpret_cast<const uint4*>(p), out);
}

// A 16-byte load of data read once (streamed weights): read-only path, not kept in L1.
__device__ __forceinline__ uint4 load16_stream(const void* p) {
  uint4 r;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
      : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
      : "l"(p));
  return r;
}
template <class T> __device__ __forceinline__ void store16(T* p, const float* in) {
  uint4 raw;
  T* e = reinterpret_cast<T*>(&raw);
#pragma unroll
  for (int i = 0; i < kVec16<T>; ++i) e[i] = from_f32<T>(in[i]);
  *reinterpret_cast<uint4*>(p) = raw;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024), returned to every thread.
// `scratch` holds 33 floats of shared memory; the call starts and ends with a barrier, so it can be
// used back to back. The order of additions is fixed for a given blockDim.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < nwarps ? scratch[lane] : 0.0f;
    w = warp_sum(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

// Same, for the maximum.
__device__ __forceinline__ float block_max(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float w = lane < nwarps ? scratch[lane] : -INFINITY;
    w = warp_max(w);
    if (lane == 0) scratch[32] = w;
  }
  __syncthreads();
  return scratch[32];
}

inline bool aligned_to(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// out[i] = op(a[i], b[i]) in f32 for i < n, grid-stride; 16-byte vectors when every pointer is
// 16-byte aligned (the tail past the last whole vector goes element by element). out may alias a
// or b: each element is read and written by the same thread.
template <class T, bool kVec, class Op>
__global__ void binary_kernel(const T* a, const T* b, T* out, size_t n, Op op) {
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t done = 0;
  if (kVec) {
    constexpr int V = kVec16<T>;
    const size_t nvec = n / V;
    for (size_t v = tid; v < nvec; v += stride) {
      float x[V], y[V];
      load16(a + v * V, x);
      load16(b + v * V, y);
#pragma unroll
      for (int i = 0; i < V; ++i) x[i] = op(x[i], y[i]);
      store16(out + v * V, x);
    }
    done = nvec * V;
  }
  for (size_t i = done + tid; i < n; i += stride) out[i] = from_f32<T>(op(to_f32(a[i]), to_f32(b[i])));
}

template <class T, class Op>
cudaError_t launch_binary(const T* a, const T* b, T* out, size_t n, Op op, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  constexpr unsigned kBlock = 256;
  if (aligned_to(a, 16) && aligned_to(b, 16) && aligned_to(out, 16)) {
    size_t work = n / kVec16<T> + kVec16<T>;
    binary_kernel<T, true><<<grid_for(work, kBlock), kBlock, 0, stream>>>(a, b, out, n, op);
  } else {
    binary_kernel<T, false><<<grid_for(n, kBlock), kBlock, 0, stream>>>(a, b, out, n, op);
  }
  return cudaGetLastError();
}

// Calls f(T{}) with T the element type of a float dtype id; cudaErrorInvalidValue for any other id.
template <class F> cudaError_t dispatch_float(int dtype, F&& f) {
  switch (dtype) {
    case kF32: return f(float{});
    case kF16: return f(__half{});
    case kBF16: return f(__nv_bfloat16{});
    default: return cudaErrorInvalidValue;
  }
}

// Properties of the current device that launchers size grids and shared memory by, asked of the
// driver once per device (launchers call this on every launch).
inline cudaError_t current_device_limits(int* sms, int* smem_optin, int* cc_major) {
  struct Limits {
    bool known;
    int sms, smem_optin, cc_major;
  };
  constexpr int kMaxDevices = 64;
  static std::mutex mu;
  static Limits cache[kMaxDevices] = {};
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  Limits d{};
  {
    std::lock_guard<std::mutex> lock(mu);
    if (dev >= 0 && dev < kMaxDevices && cache[dev].known) {
      d = cache[dev];
    } else {
      e = cudaDeviceGetAttribute(&d.sms, cudaDevAttrMultiProcessorCount, dev);
      if (e == cudaSuccess) e = cudaDeviceGetAttribute(&d.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
      if (e == cudaSuccess) e = cudaDeviceGetAttribute(&d.cc_major, cudaDevAttrComputeCapabilityMajor, dev);
      if (e != cudaSuccess) return e;
      d.known = true;
      if (dev >= 0 && dev < kMaxDevices) cache[dev] = d;
    }
  }
  if (sms) *sms = d.sms;
  if (smem_optin) *smem_optin = d.smem_optin;
  if (cc_major) *cc_major = d.cc_major;
  return cudaSuccess;
}

// Raises `kernel`'s dynamic shared-memory limit on the current device to at least `bytes` (needed
// above 48 KiB). Remembers what was set per (kernel, device), so repeated launches skip the driver.
template <class K> cudaError_t ensure_smem_limit(K kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  struct Seen {
    const void* fn;
    int dev;
    size_t bytes;
  };
  static std::mutex mu;
  static std::vector<Seen> seen;
  const void* fn = reinterpret_cast<const void*>(kernel);
  int dev = 0;
  cudaError_t e = cudaGetDevice(&dev);
  if (e != cudaSuccess) return e;
  std::lock_guard<std::mutex> lock(mu);
  for (const Seen& s : seen)
    if (s.fn == fn && s.dev == dev && s.bytes >= bytes) return cudaSuccess;
  e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) seen.push_back({fn, dev, bytes});
  return e;
}

}  // namespace kvk
