#include <cmath>

#include "ops.h"
#include "parallel.h"

namespace kv::cpu {

void rope(float* x, const int32_t* pos, const float* inv_freq, size_t n, size_t heads, size_t head_dim) {
  size_t half = head_dim / 2;
  parallel_for(n, 16, [&](size_t b, size_t e) {
    for (size_t t = b; t < e; ++t) {
      float p = static_cast<float>(pos[t]);
      for (size_t i = 0; i < half; ++i) {
        float theta = p * inv_freq[i];  // f32 product, as Hugging Face computes it
        float c = std::cos(theta), s = std::sin(theta);
        for (size_t h = 0; h < heads; ++h) {
          float* v = x + (t * heads + h) * head_dim;
          float a = v[i], bb = v[i + half];
          v[i] = a * c - bb * s;
          v[i + half] = bb * c + a * s;
        }
      }
    }
  });
}

}  // namespace kv::cpu
