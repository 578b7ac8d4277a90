#include <algorithm>

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {
namespace {

// Eight independent partial sums let the compiler keep a vector of accumulators without
// reassociating a single sum (no fast-math), so results are deterministic for a given k.
inline float dot(const float* a, const float* b, size_t k) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= k; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += a[i + l] * b[i + l];
  float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  for (; i < k; ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

void matmul(const float* x, const float* w, const float* bias, float* out, size_t n, size_t k, size_t m) {
  // Tiles of rows of x against tiles of rows of w keep both in cache; threads split the w rows
  // (the weights dominate the bytes read) or, for many tokens, the tokens too.
  constexpr size_t kTileN = 8, kTileM = 64;
  size_t tiles_m = (m + kTileM - 1) / kTileM;
  size_t tiles_n = (n + kTileN - 1) / kTileN;
  parallel_for(tiles_m * tiles_n, 1, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      size_t tm = t % tiles_m, tn = t / tiles_m;
      size_t m0 = tm * kTileM, m1 = std::min(m, m0 + kTileM);
      size_t n0 = tn * kTileN, n1 = std::min(n, n0 + kTileN);
      for (size_t i = n0; i < n1; ++i)
        for (size_t j = m0; j < m1; ++j)
          out[i * m + j] = dot(x + i * k, w + j * k, k) + (bias ? bias[j] : 0.0f);
    }
  });
}

}  // namespace kv::cpu
