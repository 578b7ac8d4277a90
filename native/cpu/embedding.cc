#include <cstring>

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {

void embedding(const int32_t* ids, size_t n, const float* table, size_t dim, float* out) {
  parallel_for(n, 64, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      std::memcpy(out + i * dim, table + static_cast<size_t>(ids[i]) * dim, dim * sizeof(float));
  });
}

}  // namespace kv::cpu
