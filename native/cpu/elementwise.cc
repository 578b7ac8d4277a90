#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "../core/order_key.h"

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {

void swiglu(const float* gate, const float* up, float* out, size_t n) {
  parallel_for(n, 1 << 14, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float g = gate[i];
      out[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void add(const float* a, const float* b, float* out, size_t n) {
  parallel_for(n, 1 << 14, [&](size_t s, size_t e) {
    for (size_t i = s; i < e; ++i) out[i] = a[i] + b[i];
  });
}

void gather_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width) {
  parallel_for(n, 64, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i)
      std::memcpy(static_cast<char*>(dst) + i * width,
                  static_cast<const char*>(src) + static_cast<size_t>(idx[i]) * width, width);
  });
}

void row_sq_diff(const float* a, const float* b, const int32_t* b_rows, float* out, size_t n, size_t w, bool accumulate) {
  parallel_for(n, 16, [&](size_t s, size_t e) {
    for (size_t r = s; r < e; ++r) {
      const float* rb = b + (b_rows ? static_cast<size_t>(b_rows[r]) : r) * w;
      float sum = 0.0f;
      for (size_t c = 0; c < w; ++c) {
        const float d = a[r * w + c] - rb[c];
        sum += d * d;
      }
      out[r] = accumulate ? out[r] + sum : sum;
    }
  });
}

void scatter_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width) {
  // Sequential; indices are distinct (the binding rejects repeats, whose winner the GPU leaves unspecified).
  for (size_t i = 0; i < n; ++i)
    std::memcpy(static_cast<char*>(dst) + static_cast<size_t>(idx[i]) * width,
                static_cast<const char*>(src) + i * width, width);
}

void top_k_rows(const float* v, size_t n, size_t k, int32_t* out) {
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  auto before = [&](int32_t a, int32_t b) {
    const uint32_t ka = float_order_key(v[a]), kb = float_order_key(v[b]);
    return ka != kb ? ka > kb : a < b;
  };
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(), before);
  std::sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k));
  std::copy(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), out);
}

}  // namespace kv::cpu
