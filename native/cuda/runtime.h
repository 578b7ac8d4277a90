// The CUDA host runtime as the rest of native/ sees it: plain C++ types only, so the binding and
// the CPU backend compile without CUDA headers. runtime.cc implements it with the CUDA runtime and
// cuBLAS; unavailable.cc implements it for builds without the CUDA backend (every call that needs
// a GPU throws kv::Error(Device) with the build's reason).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/dtype.h"

namespace kv::cuda {

struct DeviceInfo {
  int index;
  std::string name;
  size_t total_memory, free_memory;
  int cc_major, cc_minor, multiprocessors;
  size_t l2_bytes;
  double memory_clock_khz;
  int memory_bus_bits;
};

struct Info {
  bool compiled;             // the CUDA backend is part of this build
  bool available;            // compiled, a driver answered and at least one device was found
  std::string reason;        // why not available (empty when available)
  int driver_version;        // e.g. 13000, 0 when unknown
  int runtime_version;       // the CUDA runtime linked into the addon
  std::vector<DeviceInfo> devices;
  bool cublas;               // a cuBLAS handle could be created
  int cublas_version;
  std::string cublas_reason;
};

// Probes the driver and devices. Never throws; the result is cached after the first call.
const Info& info();

// Throws kv::Error(Device) naming the reason when `device` cannot be used.
void require_device(int device);

void* device_alloc(int device, size_t bytes);
void device_free(int device, void* ptr) noexcept;
void* host_alloc_pinned(size_t bytes);
void host_free_pinned(void* ptr) noexcept;

// An opaque stream handle (cudaStream_t); nullptr means the device's legacy default stream.
using Stream = void*;
Stream stream_create(int device);
void stream_destroy(int device, Stream s) noexcept;
void stream_synchronize(int device, Stream s);

// An event recorded on a stream, waited for on a worker thread by async copies.
using Event = void*;
Event event_record(int device, Stream s);
void event_wait_and_destroy(int device, Event e);  // blocks the calling thread
void event_destroy(int device, Event e) noexcept;  // without waiting (a pending event is released when it completes)

// Brackets the region a profiler run with --profile-from-start off records (ncu, nsys).
void profiler_range(int device, bool start);

// Copies between any two of host/device memory (device index kHost = -1 for the host side).
// With a stream the copy is asynchronous (host memory must then be pinned to overlap).
void memcpy(void* dst, int dst_device, const void* src, int src_device, size_t bytes,
            Stream s, bool async);

// `rows` rows of `width` bytes, row r from src + r * spitch to dst + r * dpitch, on the compute
// stream (device-to-device copies do not block the host; copies involving the host do).
void memcpy2d(void* dst, int dst_device, size_t dpitch, const void* src, int src_device, size_t spitch, size_t width,
              size_t rows);

// Element-wise dtype conversion on the device (kernels/cast.cu).
void cast(int device, const void* src, DType src_type, void* dst, DType dst_type, size_t n,
          Stream s);

// Seeded uniform fill on the device (kernels/random.cu).
void fill_uniform(int device, void* out, DType type, size_t n, uint64_t seed, float lo, float hi, Stream s);

}  // namespace kv::cuda
