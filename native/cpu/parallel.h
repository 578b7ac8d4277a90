// A persistent worker pool for the CPU reference ops. parallel_for splits [0, n) into
// contiguous ranges, one per worker, and blocks until all are done. Small ranges run inline.
#pragma once
#include <cstddef>
#include <functional>

namespace kv::cpu {

// Number of threads parallel_for uses (workers + the calling thread).
int num_threads();
// Resize the pool; n <= 0 means hardware_concurrency(). Not safe while ops are running.
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint ranges covering [0, n). Ranges are at least `grain` long.
// An exception thrown by fn is rethrown in the caller (the first one wins).
void parallel_for(size_t n, size_t grain, const std::function<void(size_t, size_t)>& fn);

}  // namespace kv::cpu
