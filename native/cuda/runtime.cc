// The CUDA host runtime (compiled only when the build has nvcc and cuBLAS). Every CUDA status is
// checked and turned into kv::Error; nothing here aborts the process.
#include "runtime.h"

#include <cublas_v2.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <string>

#include "../../kernels/cast.cuh"
#include "../../kernels/common.cuh"
#include "../../kernels/random.cuh"
#include "../core/status.h"
#include "../core/storage.h"
#include "check.h"

static_assert(static_cast<int>(kv::DType::F32) == kvk::kF32 && static_cast<int>(kv::DType::F16) == kvk::kF16 &&
                  static_cast<int>(kv::DType::BF16) == kvk::kBF16 && static_cast<int>(kv::DType::I8) == kvk::kI8 &&
                  static_cast<int>(kv::DType::U8) == kvk::kU8 && static_cast<int>(kv::DType::I32) == kvk::kI32,
              "dtype ids of native/core/dtype.h and kernels/common.cuh must agree");

namespace kv::cuda {
namespace {

using detail::check;
using detail::describe;
using detail::set_device;

Info probe() {
  Info in{};
  in.compiled = true;
  cudaRuntimeGetVersion(&in.runtime_version);
  cudaError_t e = cudaDriverGetVersion(&in.driver_version);
  if (e != cudaSuccess || in.driver_version == 0) {
    in.reason = "no CUDA driver found (libcuda.so.1 missing or not loadable)";
    return in;
  }
  int count = 0;
  e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    in.reason = "cudaGetDeviceCount failed: " + describe(e);
    cudaGetLastError();
    return in;
  }
  if (count == 0) {
    in.reason = "the CUDA driver reports no devices";
    return in;
  }
  for (int d = 0; d < count && d < kMaxCudaDevices; ++d) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) continue;
    DeviceInfo di{};
    di.index = d;
    di.name = p.name;
    di.total_memory = p.totalGlobalMem;
    di.cc_major = p.major;
    di.cc_minor = p.minor;
    di.multiprocessors = p.multiProcessorCount;
    di.l2_bytes = static_cast<size_t>(p.l2CacheSize);
    int clock = 0, bus = 0;
    cudaDeviceGetAttribute(&clock, cudaDevAttrMemoryClockRate, d);
    cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, d);
    di.memory_clock_khz = clock;
    di.memory_bus_bits = bus;
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(d) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
      di.free_memory = free_b;
    in.devices.push_back(di);
  }
  cudaGetLastError();
  if (in.devices.empty()) {
    in.reason = "no CUDA device could be queried";
    return in;
  }
  in.available = true;
  cudaSetDevice(0);
  cublasHandle_t h = nullptr;
  cublasStatus_t s = cublasCreate(&h);
  if (s == CUBLAS_STATUS_SUCCESS) {
    in.cublas = true;
    cublasGetVersion(h, &in.cublas_version);
    cublasDestroy(h);
  } else {
    in.cublas_reason = std::string("cublasCreate failed: ") + cublasGetStatusName(s);
  }
  return in;
}

}  // namespace

const Info& info() {
  static std::once_flag once;
  static Info cached;
  std::call_once(once, [] { cached = probe(); });
  return cached;
}

void require_device(int device) {
  const Info& in = info();
  if (!in.available) fail(Code::Device, "CUDA is not available: " + in.reason);
  if (device < 0 || device >= static_cast<int>(in.devices.size()))
    fail(Code::Device, "cuda:" + std::to_string(device) + " does not exist (" +
                           std::to_string(in.devices.size()) + " CUDA device(s) found)");
}

// Device memory comes from the device's stream-ordered pool (cudaMallocAsync / cudaFreeAsync on
// the legacy default stream, where kvlab's compute runs): a freed block is reused by the next
// allocation in stream order, without cudaFree's device-wide synchronisation, which stalled the host
// after every tensor disposed in a loop (CacheBlend's per-layer temporaries). The pool keeps what it
// holds (no release threshold) and gives it back when an allocation fails. Contract, as with
// PyTorch's caching allocator: work queued on another stream must finish (or be waited for) before
// the tensors it uses are disposed; kvlab's async copies keep theirs alive until they complete.
namespace {
struct PoolState {
  std::once_flag once;
  bool pooled = false;
};
PoolState g_pools[64];

bool pooled(int device) {
  if (device < 0 || device >= 64) return false;
  PoolState& ps = g_pools[device];
  std::call_once(ps.once, [&] {
    int supported = 0;
    if (cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess || !supported) {
      cudaGetLastError();
      return;
    }
    cudaMemPool_t pool = nullptr;
    if (cudaDeviceGetDefaultMemPool(&pool, device) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    uint64_t keep = UINT64_MAX;
    cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep);
    ps.pooled = true;
  });
  return ps.pooled;
}

cudaError_t pool_alloc(int device, void** p, size_t bytes) {
  cudaError_t e = cudaMallocAsync(p, bytes, cudaStreamLegacy);
  if (e != cudaErrorMemoryAllocation) return e;
  // Blocks freed but not yet reusable, or cached: let queued work finish, release them, retry.
  cudaGetLastError();
  cudaDeviceSynchronize();
  cudaMemPool_t pool = nullptr;
  if (cudaDeviceGetDefaultMemPool(&pool, device) == cudaSuccess) cudaMemPoolTrimTo(pool, 0);
  return cudaMallocAsync(p, bytes, cudaStreamLegacy);
}
}  // namespace

void* device_alloc(int device, size_t bytes) {
  set_device(device);
  void* p = nullptr;
  cudaError_t e = pooled(device) ? pool_alloc(device, &p, bytes) : cudaMalloc(&p, bytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail(Code::OOM, "cuda:" + std::to_string(device) + " allocation of " + std::to_string(bytes) +
                        " bytes (" + std::to_string(bytes >> 20) + " MiB) failed: out of device memory");
  }
  check(e, "cudaMalloc");
  return p;
}

void device_free(int device, void* ptr) noexcept {
  if (cudaSetDevice(device) == cudaSuccess) {
    if (pooled(device)) cudaFreeAsync(ptr, cudaStreamLegacy);
    else cudaFree(ptr);
  }
  cudaGetLastError();
}

void* host_alloc_pinned(size_t bytes) {
  if (!info().available) fail(Code::Device, "pinned host memory needs CUDA: " + info().reason);
  void* p = nullptr;
  cudaError_t e = cudaHostAlloc(&p, bytes, cudaHostAllocDefault);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    fail(Code::OOM, "pinned host allocation of " + std::to_string(bytes) + " bytes failed");
  }
  check(e, "cudaHostAlloc");
  return p;
}

void host_free_pinned(void* ptr) noexcept {
  cudaFreeHost(ptr);
  cudaGetLastError();
}

Stream stream_create(int device) {
  set_device(device);
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  return s;
}

void stream_destroy(int device, Stream s) noexcept {
  if (!s) return;
  if (cudaSetDevice(device) == cudaSuccess) cudaStreamDestroy(static_cast<cudaStream_t>(s));
  cudaGetLastError();
}

void stream_synchronize(int device, Stream s) {
  set_device(device);
  check(s ? cudaStreamSynchronize(static_cast<cudaStream_t>(s)) : cudaDeviceSynchronize(),
        "stream synchronize");
}

Event event_record(int device, Stream s) {
  set_device(device);
  cudaEvent_t ev = nullptr;
  check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
  cudaError_t e = cudaEventRecord(ev, static_cast<cudaStream_t>(s));
  if (e != cudaSuccess) {
    cudaEventDestroy(ev);
    check(e, "cudaEventRecord");
  }
  return ev;
}

void event_wait_and_destroy(int device, Event e) {
  cudaSetDevice(device);
  cudaError_t st = cudaEventSynchronize(static_cast<cudaEvent_t>(e));
  cudaEventDestroy(static_cast<cudaEvent_t>(e));
  check(st, "cudaEventSynchronize");
}

void event_destroy(int device, Event e) noexcept {
  cudaSetDevice(device);
  cudaEventDestroy(static_cast<cudaEvent_t>(e));
}

void profiler_range(int device, bool start) {
  set_device(device);
  check(start ? cudaProfilerStart() : cudaProfilerStop(), start ? "cudaProfilerStart" : "cudaProfilerStop");
}

void memcpy(void* dst, int dst_device, const void* src, int src_device, size_t bytes, Stream s,
            bool async) {
  if (bytes == 0) return;
  int active = dst_device != kHost ? dst_device : src_device;
  set_device(active);
  cudaStream_t st = static_cast<cudaStream_t>(s);
  if (async) {
    if (st != nullptr && st != cudaStreamLegacy) {
      // Order the copy after the compute already queued: a fresh destination may be pool memory that
      // queued kernels still read through the tensor that freed it (see device_alloc).
      cudaEvent_t ev = nullptr;
      check(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming), "cudaEventCreate");
      cudaError_t e = cudaEventRecord(ev, cudaStreamLegacy);
      if (e == cudaSuccess) e = cudaStreamWaitEvent(st, ev, 0);
      cudaEventDestroy(ev);
      check(e, "cudaStreamWaitEvent");
    }
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, st), "cudaMemcpyAsync");
  } else {
    check(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault), "cudaMemcpy");
  }
}

void memcpy2d(void* dst, int dst_device, size_t dpitch, const void* src, int src_device, size_t spitch, size_t width,
              size_t rows) {
  if (width == 0 || rows == 0) return;
  set_device(dst_device != kHost ? dst_device : src_device);
  check(cudaMemcpy2D(dst, dpitch, src, spitch, width, rows, cudaMemcpyDefault), "cudaMemcpy2D");
}

void cast(int device, const void* src, DType src_type, void* dst, DType dst_type, size_t n,
          Stream s) {
  set_device(device);
  check(kvk::cast(src, static_cast<int>(src_type), dst, static_cast<int>(dst_type), n,
                  static_cast<cudaStream_t>(s)),
        "kernel cast");
}

void fill_uniform(int device, void* out, DType type, size_t n, uint64_t seed, float lo, float hi, Stream s) {
  set_device(device);
  check(kvk::fill_uniform(out, static_cast<int>(type), n, seed, lo, hi, static_cast<cudaStream_t>(s)),
        "kernel fill_uniform");
}

}  // namespace kv::cuda
