// CacheGen's per-stream coding, shared by the C++ codec (cachegen.cc) and the CUDA kernels
// (kernels/codec_cachegen.cu). One stream is one channel c of one (layer, K|V) over a block of
// tokens [t0, t1) that starts at a group (t0 % G == 0). Token t is an anchor when t % G == 0: it is
// quantised on its own with levels -mA..mA of the channel's anchor step. Every other token is coded as
// the delta to its group's DEquantised anchor, with levels -mD..mD of its delta step, so the decoder
// rebuilds exactly the reference the encoder subtracted. A raw plane (no token locality, as in V of
// some layers) has no anchors and codes every token directly with the delta step. Steps are chosen per
// channel (cg_plane_steps) and stored. Anchor symbols use the (layer, K|V) anchor table, the others
// the (layer, K|V, channel) table; both are rANS frequency tables of kProbBits.
#pragma once
#include <cstdint>

#include "freq.h"
#include "hd.h"
#include "rans.h"

namespace kv::codec {

constexpr uint32_t kProbBits = 12;
constexpr uint32_t kMaxLevel = (kMaxAlphabet - 1) / 2;  // 31
// Set in a plane's mD config byte when the plane codes every token directly, with no anchors (FORMAT.md).
constexpr uint8_t kRawFlag = 0x80;

struct CgChannel {
  int32_t m_anchor, m_delta;
  float inv_a, step_a, inv_d, step_d;
  // The plane codes every token directly (reference 0, no anchors) instead of as deltas to anchors:
  // chosen per plane where deltas would span more than the values (no token locality, as in V).
  bool raw;
};

// A channel's coding parameters from its stored steps (bf16 bits).
KV_HD inline CgChannel cg_channel(uint16_t step_a, uint16_t step_d, int32_t m_anchor, int32_t m_delta,
                                  bool raw = false) {
  CgChannel ch;
  ch.raw = raw;
  ch.m_anchor = m_anchor;
  ch.m_delta = m_delta;
  ch.step_a = bf16_value(step_a);
  ch.step_d = bf16_value(step_d);
  ch.inv_a = ch.step_a > 0.0f ? fdiv(1.0f, ch.step_a) : 0.0f;
  ch.inv_d = ch.step_d > 0.0f ? fdiv(1.0f, ch.step_d) : 0.0f;
  return ch;
}

// Token t of a stream is coded as an anchor: t % G == 0 in a plane that codes deltas. A raw plane has
// no anchors: nothing refers to them, so every token takes the channel's own step and table.
KV_HD inline bool cg_is_anchor(const CgChannel& ch, uint32_t t, uint32_t group) { return !ch.raw && t % group == 0; }

// Whether a plane's anchor table (anchor = true) or one of its delta tables is ever read: anchors
// exist only in planes that code deltas; delta symbols exist where a raw plane codes every token, or
// where groups have tokens besides their anchor.
KV_HD inline bool cg_table_needed(bool anchor, bool raw, uint64_t tokens, uint32_t group) {
  return anchor ? !raw : raw || (tokens > 1 && group > 1);
}

KV_HD inline int32_t cg_anchor_sym(const CgChannel& ch, float x) { return quantize_sym(x, ch.inv_a, ch.m_anchor); }
KV_HD inline float cg_anchor_value(const CgChannel& ch, int32_t q) { return fmul(static_cast<float>(q), ch.step_a); }
KV_HD inline int32_t cg_delta_sym(const CgChannel& ch, float x, float anchor) {
  return quantize_sym(ch.raw ? x : fsub(x, anchor), ch.inv_d, ch.m_delta);
}
KV_HD inline float cg_delta_value(const CgChannel& ch, float anchor, int32_t q) {
  const float d = fmul(static_cast<float>(q), ch.step_d);
  return ch.raw ? d : fadd(anchor, d);
}

// Max |x| over a channel's anchors (tokens t % group == 0 of [0, n)). `load(t)` reads token t.
template <class Load>
KV_HD inline float cg_anchor_maxabs(Load load, uint32_t n, uint32_t group) {
  float ma = 0.0f;
  for (uint32_t t = 0; t < n; t += group) {
    float a = fabs_exact(load(t));
    ma = a > ma ? a : ma;
  }
  return ma;
}

// Max |x - anchor'| over a channel's non-anchor tokens (anchor' its group's dequantised anchor) into
// *delta and max |x| over all its tokens into *raw: what the plane's choice of reference compares, and
// the ranges the delta steps must cover under either reference (a raw plane codes every token).
template <class Load>
KV_HD inline void cg_delta_maxabs(Load load, uint32_t n, uint32_t group, const CgChannel& ch, float* delta, float* raw) {
  float md = 0.0f, mr = 0.0f, anchor = 0.0f;
  for (uint32_t t = 0; t < n; ++t) {
    float x = load(t);
    float a = fabs_exact(x);
    mr = a > mr ? a : mr;
    if (t % group == 0) {
      anchor = cg_anchor_value(ch, cg_anchor_sym(ch, x));
      continue;
    }
    float d = fabs_exact(fsub(x, anchor));
    md = d > md ? d : md;
  }
  *delta = md;
  *raw = mr;
}

// acc plus the channels' maxima, each rounded up to bf16, added in double in channel order: the fixed
// order in which the CPU, the GPU and a profile's sums over sample spans all add them.
KV_HD inline double cg_add_rounded(double acc, const float* maxima, uint32_t channels) {
  for (uint32_t c = 0; c < channels; ++c) acc = dadd(acc, static_cast<double>(bf16_value(bf16_round_up(maxima[c]))));
  return acc;
}

// A plane's reference: raw (true) when its channels' maxima of |x| add up to less than those of
// |x - anchor'| (each rounded up to bf16, summed in double in channel order, so the CPU and the GPU
// agree): the values then span less than the deltas and cost fewer bits at the same step.
KV_HD inline bool cg_plane_raw(const float* max_delta, const float* max_raw, uint32_t channels) {
  return cg_add_rounded(0.0, max_raw, channels) < cg_add_rounded(0.0, max_delta, channels);
}

// The steps of one plane's channels (anchors or deltas). Entropy coding makes the rate follow the
// step, and equal steps across a plane's channels spend bits where the signal is (the MSE-optimal
// allocation), so the step is a plane-wide `fraction` of the channels' mean `resolution` maxima; a
// channel whose `range` (the max |value| actually coded) needs more than m levels at that step gets
// the coarser step range / m instead, so no value is clipped. fraction = 0 gives every channel
// range / m. Deltas take their resolution from max |x - anchor'| whichever reference a plane codes
// against: the level fixes the step (the distortion) and the reference only changes the rate.
// Fixed-order double sum: the CPU and the GPU (one thread per plane) get the same bits.
KV_HD inline void cg_plane_steps(const float* resolution, const float* range, uint32_t channels, float fraction,
                                 int32_t m, uint16_t* steps) {
  float mean = static_cast<float>(ddiv(cg_add_rounded(0.0, resolution, channels), static_cast<double>(channels)));
  float target = fmul(mean, fraction);
  for (uint32_t c = 0; c < channels; ++c) {
    float need = fdiv(bf16_value(bf16_round_up(range[c])), static_cast<float>(m));
    steps[c] = bf16_round_up(need > target ? need : target);
  }
}

// Symbol histogram of one channel: anchor symbols into hist_a[sym + mA], deltas into hist_d[sym + mD].
template <class Load, class Count, class Hist>
KV_HD inline void cg_channel_histogram(Load load, uint32_t n, uint32_t group, const CgChannel& ch, Count count_anchor,
                                       Hist hist_d) {
  float anchor = 0.0f;
  for (uint32_t t = 0; t < n; ++t) {
    float x = load(t);
    if (cg_is_anchor(ch, t, group)) {
      int32_t q = cg_anchor_sym(ch, x);
      anchor = cg_anchor_value(ch, q);
      count_anchor(static_cast<uint32_t>(q + ch.m_anchor));
    } else {
      hist_d[cg_delta_sym(ch, x, anchor) + ch.m_delta] += 1;
    }
  }
}

// Encodes tokens [t0, t1) into the bytes ending at `end`; returns the stream's length in bytes
// (at most 4 + 2 * (t1 - t0)). Tables: the cumulative frequencies of the anchor and the delta
// alphabet (freq[s] = cum[s + 1] - cum[s]): pointers, or anything indexable like them (the GPU keeps
// each thread's delta table in shared memory).
template <class Load, class CumA, class CumD>
KV_HD inline uint32_t cg_encode_stream(Load load, uint32_t t0, uint32_t t1, uint32_t group, const CgChannel& ch,
                                       const CumA& ca, const CumD& cd, uint8_t* end) {
  RansEncoder e;
  rans_enc_init(e, end);
  uint32_t cached_anchor_t = 0xffffffffu;
  float anchor = 0.0f;
  for (uint32_t t = t1; t-- > t0;) {
    uint32_t at = t - t % group;
    if (!ch.raw && at != cached_anchor_t) {
      cached_anchor_t = at;
      anchor = cg_anchor_value(ch, cg_anchor_sym(ch, load(at)));
    }
    if (cg_is_anchor(ch, t, group)) {
      uint32_t s = static_cast<uint32_t>(cg_anchor_sym(ch, load(t)) + ch.m_anchor);
      rans_enc_put(e, ca[s], ca[s + 1] - ca[s], kProbBits);
    } else {
      uint32_t s = static_cast<uint32_t>(cg_delta_sym(ch, load(t), anchor) + ch.m_delta);
      rans_enc_put(e, cd[s], cd[s + 1] - cd[s], kProbBits);
    }
  }
  rans_enc_flush(e);
  return static_cast<uint32_t>(end - e.ptr);
}

// Decodes tokens [t0, t1) (t0 % group == 0) from [p, end), calling store(t, value). Returns false
// when the stream is corrupt (the values stored are then meaningless but always finite).
template <class Store, class CumA, class CumD>
KV_HD inline bool cg_decode_stream(Store store, const uint8_t* p, const uint8_t* end, uint32_t t0, uint32_t t1,
                                   uint32_t group, const CgChannel& ch, const CumA& ca, const CumD& cd) {
  RansDecoder d;
  rans_dec_init(d, p, end);
  if (d.bad) return false;
  const uint32_t na = 2 * ch.m_anchor + 1, nd = 2 * ch.m_delta + 1;
  float anchor = 0.0f;
  for (uint32_t t = t0; t < t1; ++t) {
    uint32_t slot = rans_dec_slot(d, kProbBits);
    if (cg_is_anchor(ch, t, group)) {
      uint32_t s = cum_lookup(ca, na, slot);
      rans_dec_advance(d, ca[s], ca[s + 1] - ca[s], kProbBits);
      anchor = cg_anchor_value(ch, static_cast<int32_t>(s) - ch.m_anchor);
      store(t, anchor);
    } else {
      uint32_t s = cum_lookup(cd, nd, slot);
      rans_dec_advance(d, cd[s], cd[s + 1] - cd[s], kProbBits);
      store(t, cg_delta_value(ch, anchor, static_cast<int32_t>(s) - ch.m_delta));
    }
  }
  return rans_dec_ok(d);
}

}  // namespace kv::codec
