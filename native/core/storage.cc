#include "storage.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "../cuda/runtime.h"
#include "status.h"

namespace kv {
namespace {

struct Counter {
  std::atomic<uint64_t> live{0}, peak{0}, live_allocs{0}, total_allocs{0};
  std::atomic<bool> used{false};
};
Counter g_counters[kMaxCudaDevices + 1];  // [0] host, [1 + d] CUDA device d

Counter& counter(int device) { return g_counters[device + 1]; }

void count_alloc(int device, size_t bytes) {
  Counter& c = counter(device);
  c.used = true;
  uint64_t now = c.live.fetch_add(bytes) + bytes;
  uint64_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {}
  ++c.live_allocs;
  ++c.total_allocs;
}

void count_free(int device, size_t bytes) {
  Counter& c = counter(device);
  c.live.fetch_sub(bytes);
  --c.live_allocs;
}

std::string human(size_t bytes) {
  return std::to_string(bytes) + " bytes (" + std::to_string(bytes >> 20) + " MiB)";
}

}  // namespace

Storage::~Storage() {
  if (!data || parent) return;  // a failed allocation, or a view: nothing to free or uncount
  if (device == kHost) {
    if (pinned) cuda::host_free_pinned(data);
    else std::free(data);
  } else {
    cuda::device_free(device, data);
  }
  count_free(device, bytes);
}

std::shared_ptr<Storage> storage_alloc(int device, size_t bytes, bool pinned) {
  if (device < kHost || device >= kMaxCudaDevices)
    fail(Code::Device, "device index " + std::to_string(device) + " is out of range");
  auto s = std::make_shared<Storage>();
  s->device = device;
  s->pinned = pinned && device == kHost;
  size_t n = bytes == 0 ? 1 : bytes;  // a real pointer even for empty tensors
  if (device == kHost) {
    if (s->pinned) {
      s->data = cuda::host_alloc_pinned(n);
    } else {
      // 64-byte alignment for vector loads; size rounded up as aligned_alloc requires.
      size_t rounded = (n + 63) / 64 * 64;
      if (rounded < n) fail(Code::OOM, "host allocation of " + human(bytes) + " overflows");
      s->data = std::aligned_alloc(64, rounded);
    }
    if (!s->data) fail(Code::OOM, "host allocation of " + human(bytes) + " failed");
  } else {
    s->data = cuda::device_alloc(device, n);  // throws OOM / Device itself
  }
  s->bytes = bytes;
  count_alloc(device, bytes);
  return s;
}

std::shared_ptr<Storage> storage_view(const std::shared_ptr<Storage>& parent, size_t offset, size_t bytes) {
  if (offset > parent->bytes || bytes > parent->bytes - offset)
    fail(Code::Shape, "view of bytes [" + std::to_string(offset) + ", +" + std::to_string(bytes) +
                          ") exceeds the storage of " + std::to_string(parent->bytes) + " bytes");
  auto s = std::make_shared<Storage>();
  s->parent = parent->parent ? parent->parent : parent;
  s->data = static_cast<uint8_t*>(parent->data) + offset;
  s->bytes = bytes;
  s->device = parent->device;
  s->pinned = parent->pinned;
  return s;
}

std::vector<MemoryCounter> memory_counters() {
  std::vector<MemoryCounter> out;
  for (int d = kHost; d < kMaxCudaDevices; ++d) {
    Counter& c = counter(d);
    if (d != kHost && !c.used) continue;
    out.push_back({d, c.live.load(), c.peak.load(), c.live_allocs.load(), c.total_allocs.load()});
  }
  return out;
}

}  // namespace kv
