#include <cmath>
#include <limits>
#include <vector>

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {

void attention(const float* q, const float* k, const float* v, const int32_t* qpos, const int32_t* kpos,
               float* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale) {
  size_t group = hq / hkv;
  parallel_for(nq * hq, 4, [&](size_t b, size_t e) {
    std::vector<float> scores(nk);
    for (size_t task = b; task < e; ++task) {
      size_t i = task / hq, h = task % hq, g = h / group;
      const float* qi = q + (i * hq + h) * d;
      float* oi = out + (i * hq + h) * d;
      float mx = -std::numeric_limits<float>::infinity();
      for (size_t j = 0; j < nk; ++j) {
        if (kpos[j] > qpos[i]) continue;
        const float* kj = k + (j * hkv + g) * d;
        float s = 0;
        for (size_t c = 0; c < d; ++c) s += qi[c] * kj[c];
        scores[j] = s * scale;
        mx = std::max(mx, scores[j]);
      }
      for (size_t c = 0; c < d; ++c) oi[c] = 0;
      if (mx == -std::numeric_limits<float>::infinity()) continue;  // no visible key
      double sum = 0;
      for (size_t j = 0; j < nk; ++j) {
        if (kpos[j] > qpos[i]) continue;
        float p = std::exp(scores[j] - mx);
        sum += p;
        const float* vj = v + (j * hkv + g) * d;
        for (size_t c = 0; c < d; ++c) oi[c] += p * vj[c];
      }
      float inv = static_cast<float>(1.0 / sum);
      for (size_t c = 0; c < d; ++c) oi[c] *= inv;
    }
  });
}

}  // namespace kv::cpu
