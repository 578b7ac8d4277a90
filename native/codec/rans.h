// rANS, one independent stream per thread: a 32-bit state renormalised with 16-bit words, integer-only
// so the CPU and the GPU write byte-identical streams. Probabilities are frequencies summing to
// 2^bits (bits <= 16). Stream bytes: the final encoder state (4 bytes, little-endian), then the
// 16-bit words (little-endian) in the order the decoder reads them. A valid stream decodes back to
// the initial state kRansL with every byte consumed, which the decoder checks.
#pragma once
#include <cstdint>

#include "hd.h"

namespace kv::codec {

constexpr uint32_t kRansL = 1u << 16;

// The encoder runs over the symbols backwards and writes downwards from `end`.
struct RansEncoder {
  uint32_t x;
  uint8_t* ptr;
};

KV_HD inline void rans_enc_init(RansEncoder& e, uint8_t* end) {
  e.x = kRansL;
  e.ptr = end;
}

KV_HD inline void rans_enc_put(RansEncoder& e, uint32_t start, uint32_t freq, uint32_t bits) {
  // x must stay below 2^32 after encoding: emit one word when it would not (at most one is needed).
  uint64_t x_max = static_cast<uint64_t>((kRansL >> bits) << 16) * freq;
  uint32_t x = e.x;
  if (x >= x_max) {
    e.ptr -= 2;
    e.ptr[0] = static_cast<uint8_t>(x);
    e.ptr[1] = static_cast<uint8_t>(x >> 8);
    x >>= 16;
  }
  e.x = ((x / freq) << bits) + (x % freq) + start;
}

KV_HD inline void rans_enc_flush(RansEncoder& e) {
  e.ptr -= 4;
  e.ptr[0] = static_cast<uint8_t>(e.x);
  e.ptr[1] = static_cast<uint8_t>(e.x >> 8);
  e.ptr[2] = static_cast<uint8_t>(e.x >> 16);
  e.ptr[3] = static_cast<uint8_t>(e.x >> 24);
}

// The decoder reads upwards; every read is bounds-checked, so any bytes are safe to decode.
struct RansDecoder {
  uint32_t x;
  const uint8_t* p;
  const uint8_t* end;
  bool bad;
};

KV_HD inline void rans_dec_init(RansDecoder& d, const uint8_t* p, const uint8_t* end) {
  d.p = p;
  d.end = end;
  d.bad = end - p < 4;
  d.x = 0;
  if (!d.bad) {
    d.x = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
          static_cast<uint32_t>(p[3]) << 24;
    d.p += 4;
  }
}

KV_HD inline uint32_t rans_dec_slot(const RansDecoder& d, uint32_t bits) { return d.x & ((1u << bits) - 1u); }

KV_HD inline void rans_dec_advance(RansDecoder& d, uint32_t start, uint32_t freq, uint32_t bits) {
  uint32_t slot = d.x & ((1u << bits) - 1u);
  d.x = freq * (d.x >> bits) + slot - start;  // unsigned: wraps harmlessly on corrupt input
  if (d.x < kRansL) {
    if (d.end - d.p >= 2) {
      d.x = (d.x << 16) | static_cast<uint32_t>(d.p[0]) | static_cast<uint32_t>(d.p[1]) << 8;
      d.p += 2;
    } else {
      d.bad = true;
    }
  }
}

KV_HD inline bool rans_dec_ok(const RansDecoder& d) { return !d.bad && d.x == kRansL && d.p == d.end; }

// Symbol lookup: the largest s with cum[s] <= slot (cum has n + 1 entries, cum[n] = 2^bits;
// zero-frequency symbols share their successor's cum and are never chosen).
template <class Cum>
KV_HD inline uint32_t cum_lookup(const Cum& cum, uint32_t n, uint32_t slot) {
  uint32_t lo = 0, hi = n;  // invariant: cum[lo] <= slot < cum[hi]
  while (hi - lo > 1) {
    uint32_t mid = (lo + hi) >> 1;
    if (cum[mid] <= slot) lo = mid;
    else hi = mid;
  }
  return lo;
}

}  // namespace kv::codec
