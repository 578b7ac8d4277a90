#include <cmath>

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {

void rmsnorm(const float* x, const float* w, float* out, size_t n, size_t dim, float eps) {
  parallel_for(n, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      const float* xi = x + i * dim;
      float* oi = out + i * dim;
      double ss = 0;  // double: the reference should not be the least accurate side
      for (size_t j = 0; j < dim; ++j) ss += static_cast<double>(xi[j]) * xi[j];
      float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(dim) + eps));
      for (size_t j = 0; j < dim; ++j) oi[j] = xi[j] * inv * w[j];
    }
  });
}

}  // namespace kv::cpu
