#include <algorithm>
#include <cmath>
#include <vector>

#include "ops.h"

namespace kv::cpu {

int32_t sample(const float* logits, size_t vocab, float temperature, float top_p, float u) {
  size_t best = 0;
  for (size_t j = 1; j < vocab; ++j)
    if (logits[j] > logits[best]) best = j;
  if (temperature <= 0.0f || vocab == 1) return static_cast<int32_t>(best);
  // Softmax with temperature, max-subtracted, in f32 like the kernel.
  std::vector<float> p(vocab);
  float mx = logits[best];
  double total = 0;
  for (size_t j = 0; j < vocab; ++j) {
    p[j] = std::exp((logits[j] - mx) / temperature);
    total += p[j];
  }
  float inv = static_cast<float>(1.0 / total);
  for (size_t j = 0; j < vocab; ++j) p[j] *= inv;
  // Top-p: the threshold t is the smallest kept probability of the sorted prefix whose mass first
  // reaches top_p; every j with p_j >= t is kept (ties at t included).
  float t = 0.0f;
  if (top_p < 1.0f) {
    std::vector<float> sorted(p);
    std::sort(sorted.begin(), sorted.end(), [](float a, float b) { return a > b; });
    double mass = 0;
    t = sorted.back();
    for (float x : sorted) {
      mass += x;
      if (mass >= top_p) {
        t = x;
        break;
      }
    }
  }
  double kept = 0;
  for (size_t j = 0; j < vocab; ++j)
    if (p[j] >= t) kept += p[j];
  double target = static_cast<double>(u) * kept, run = 0;
  size_t last = best;
  for (size_t j = 0; j < vocab; ++j) {
    if (p[j] < t) continue;
    run += p[j];
    last = j;
    if (run > target) return static_cast<int32_t>(j);
  }
  return static_cast<int32_t>(last);  // u * kept rounded up to the total: the last kept index
}

}  // namespace kv::cpu
