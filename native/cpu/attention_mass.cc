// cpu::attention_mass (ops.h): per (query, head) pair the largest visible score and the softmax sum,
// then per key the sum of its probabilities over the pairs in order. Each score is recomputed in the
// second pass by the same double-precision dot, so both passes see the same value; every output is
// formed by one thread in a fixed order, so the result does not depend on the thread count.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../core/half.h"
#include "../core/status.h"
#include "ops.h"
#include "parallel.h"

namespace kv::cpu {
namespace {

// Elements [offset, offset + n) of a float buffer of `type`, as double.
void load_row(const void* base, DType type, size_t offset, size_t n, double* out) {
  switch (type) {
    case DType::F32: {
      const float* p = static_cast<const float*>(base) + offset;
      for (size_t c = 0; c < n; ++c) out[c] = p[c];
      return;
    }
    case DType::F16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (size_t c = 0; c < n; ++c) out[c] = f16_to_f32(p[c]);
      return;
    }
    case DType::BF16: {
      const uint16_t* p = static_cast<const uint16_t*>(base) + offset;
      for (size_t c = 0; c < n; ++c) out[c] = bf16_to_f32(p[c]);
      return;
    }
    default:
      fail(Code::DType, std::string("attention_mass: expected f32, f16 or bf16, got ") + dtype_name(type));
  }
}

double score(const double* q, const double* k, size_t d, double scale) {
  double s = 0;
  for (size_t c = 0; c < d; ++c) s += q[c] * k[c];
  return s * scale;
}

}  // namespace

void attention_mass(const void* q, const void* k, DType type, const int32_t* qpos, const int32_t* kpos, float* out,
                    size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale) {
  if (hkv == 0 || hq % hkv != 0)
    fail(Code::Arg, "attention_mass: query heads (" + std::to_string(hq) + ") must be a multiple of kv heads (" +
                        std::to_string(hkv) + ")");
  const size_t group = hq / hkv, pairs = nq * hq;
  const double sc = scale;
  std::vector<double> qd(pairs * d);
  load_row(q, type, 0, pairs * d, qd.data());
  // Pass 1, per pair: M = the largest visible score, Z = the sum of exp(score - M); seen: any key visible.
  std::vector<double> max(pairs), sum_exp(pairs);
  std::vector<char> seen(pairs);
  parallel_for(pairs, 1, [&](size_t b, size_t e) {
    std::vector<double> krow(d), scores(nk);
    for (size_t p = b; p < e; ++p) {
      const size_t i = p / hq, g = (p % hq) / group;
      const double* qp = qd.data() + p * d;
      double m = -std::numeric_limits<double>::infinity();
      bool any = false;
      for (size_t j = 0; j < nk; ++j) {
        if (kpos[j] > qpos[i]) continue;
        load_row(k, type, (j * hkv + g) * d, d, krow.data());
        scores[j] = score(qp, krow.data(), d, sc);
        if (scores[j] > m) m = scores[j];
        any = true;
      }
      double z = 0;
      for (size_t j = 0; j < nk; ++j)
        if (kpos[j] <= qpos[i]) z += std::exp(scores[j] - m);
      max[p] = m;
      sum_exp[p] = z;
      seen[p] = any;
    }
  });
  // Pass 2, per key: its probability under every pair that sees it, summed in pair order.
  parallel_for(nk, 16, [&](size_t b, size_t e) {
    std::vector<double> krow(hkv * d);
    for (size_t j = b; j < e; ++j) {
      load_row(k, type, j * hkv * d, hkv * d, krow.data());
      double sum = 0;
      for (size_t p = 0; p < pairs; ++p) {
        if (!seen[p] || kpos[j] > qpos[p / hq]) continue;
        const size_t g = (p % hq) / group;
        sum += std::exp(score(qd.data() + p * d, krow.data() + g * d, d, sc) - max[p]) / sum_exp[p];
      }
      out[j] = static_cast<float>(sum);
    }
  });
}

}  // namespace kv::cpu
