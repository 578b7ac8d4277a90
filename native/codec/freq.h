// Compact probability tables: one byte per symbol, a log-scale code of its probability (0 = never
// seen; code c >= 1 stands for the weight T[(c-1) % 16] << ((c-1) / 16), i.e. 2^((c-1)/16) steps of
// about 4.4%). Codes are computed from counts and turned into rANS frequencies summing to 2^bits with
// integer arithmetic only, so the GPU and the CPU build the same tables from the same codes.
#pragma once
#include <cstdint>

#include "hd.h"

namespace kv::codec {

constexpr uint32_t kMaxAlphabet = 63;  // symbols -31..31: keeps the frequency fix-up below safe

KV_HD inline uint32_t log_code_mantissa(uint32_t j) {
  // round(2^16 * 2^(j/16)), j = 0..15
  const uint32_t t[16] = {65536, 68438, 71468, 74632, 77936, 81386, 84990, 88752,
                          92682, 96785, 101070, 105545, 110218, 115098, 120194, 125515};
  return t[j & 15u];
}

KV_HD inline uint64_t log_code_weight(uint8_t code) {
  if (code == 0) return 0;
  uint32_t c = code - 1u;
  return static_cast<uint64_t>(log_code_mantissa(c & 15u)) << (c >> 4);
}

// The code of count/total (count <= total, total > 0): 1 + 16*floor(log2 v) + j where
// v = max(1, count * 2^16 / total) and j the largest mantissa index not above v's normalised mantissa.
KV_HD inline uint8_t log_code_of(uint64_t count, uint64_t total) {
  if (count == 0 || total == 0) return 0;
  uint64_t v = (count << 16) / total;
  if (v == 0) v = 1;
  uint32_t k = 0;
  while ((v >> (k + 1)) != 0) ++k;  // floor(log2 v), v <= 2^16
  uint64_t m = v << (16 - k);  // in [2^16, 2^17)
  uint32_t j = 0;
  while (j < 15 && log_code_mantissa(j + 1) <= m) ++j;
  uint32_t code = 1 + 16 * k + j;
  return static_cast<uint8_t>(code > 255 ? 255 : code);
}

// The codes of one table from its symbol counts (+ `smoothing` on every symbol).
template <class Count>
KV_HD inline void log_codes_from_counts(const Count* counts, uint32_t n, uint8_t* codes, uint64_t smoothing) {
  uint64_t total = 0;
  for (uint32_t s = 0; s < n; ++s) total += static_cast<uint64_t>(counts[s]) + smoothing;
  for (uint32_t s = 0; s < n; ++s) codes[s] = log_code_of(static_cast<uint64_t>(counts[s]) + smoothing, total);
}

// Frequencies from codes: freq[s] summing to 2^bits, >= 1 for every coded symbol, 0 for code 0;
// cum[0..n] their prefix sums. n <= kMaxAlphabet. Returns false for a table with no symbol at all.
KV_HD inline bool freqs_from_codes(const uint8_t* codes, uint32_t n, uint32_t bits, uint32_t* freq, uint32_t* cum) {
  const uint64_t total = 1ull << bits;
  uint64_t w_sum = 0;
  for (uint32_t s = 0; s < n; ++s) w_sum += log_code_weight(codes[s]);
  if (w_sum == 0) {
    for (uint32_t s = 0; s <= n; ++s) cum[s] = 0;
    for (uint32_t s = 0; s < n; ++s) freq[s] = 0;
    return false;
  }
  int64_t sum = 0;
  uint32_t best = 0;
  for (uint32_t s = 0; s < n; ++s) {
    uint64_t w = log_code_weight(codes[s]);
    uint32_t f = 0;
    if (w) {
      uint64_t q = (w * total) / w_sum;
      f = q == 0 ? 1u : static_cast<uint32_t>(q);
    }
    freq[s] = f;
    sum += f;
    if (f > freq[best]) best = s;
  }
  // |total - sum| <= n <= 63 and the largest frequency is >= total / n - 1 >= 64 (bits = 12), so the
  // fix-up keeps it >= 1.
  int64_t fixed = static_cast<int64_t>(freq[best]) + (static_cast<int64_t>(total) - sum);
  freq[best] = static_cast<uint32_t>(fixed < 1 ? 1 : fixed);
  cum[0] = 0;
  for (uint32_t s = 0; s < n; ++s) cum[s + 1] = cum[s] + freq[s];
  return cum[n] == total;
}

}  // namespace kv::codec
