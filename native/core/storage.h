// A block of memory on one device (host, pinned host, or a CUDA device), owned by shared_ptr so
// in-flight async work keeps it alive after the JavaScript side disposes its tensor.
// Every allocation is counted per device (live and peak bytes) for memoryStats().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace kv {

constexpr int kHost = -1;  // device index of host memory
constexpr int kMaxCudaDevices = 64;

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  int device = kHost;  // kHost or a CUDA device ordinal
  bool pinned = false;  // page-locked host memory (cudaHostAlloc)
  std::shared_ptr<Storage> parent;  // set for views: the parent owns (and frees) the memory
  ~Storage();
};

// Allocates `bytes` (0 allowed) on `device`; throws kv::Error(OOM) when the allocation fails
// and kv::Error(Device) when the device does not exist.
std::shared_ptr<Storage> storage_alloc(int device, size_t bytes, bool pinned);

// A view of bytes [offset, offset + bytes) of `parent` that keeps the parent alive. Not counted.
std::shared_ptr<Storage> storage_view(const std::shared_ptr<Storage>& parent, size_t offset, size_t bytes);

struct MemoryCounter {
  int device;
  uint64_t live_bytes, peak_bytes, live_allocations, total_allocations;
};
// One entry for the host, then one per CUDA device that has ever allocated.
std::vector<MemoryCounter> memory_counters();

}  // namespace kv
