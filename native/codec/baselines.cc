// Baseline codecs: fp16 raw; int8/int4 symmetric per token or per channel (scale = max|x| rounded
// up to bf16, levels -127..127 or -7..7); kivi2, KIVI-style 2-bit asymmetric (keys per channel over
// groups of G tokens, values per token over groups of G channels; min and step in f16; optionally
// KIVI's full-precision residual of the most recent tokens).
// One stream per (layer, K|V) of fixed-width codes in [token][channel] order: int8 a byte each,
// int4 two's-complement nibbles low first, kivi2 four 2-bit codes a byte, low first, then (with a
// residual) the residual tokens as fp16.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "../core/half.h"
#include "../core/status.h"
#include "../cpu/parallel.h"
#include "codec.h"
#include "crc32.h"
#include "hd.h"

namespace kv::codec {
namespace {

struct Kind {
  int bits;          // 16, 8, 4, 2
  bool per_channel;  // int: scale per (plane, channel) instead of per (plane, token)
};

Kind kind_of(CodecId id) {
  switch (id) {
    case CodecId::Fp16: return {16, false};
    case CodecId::Int8Token: return {8, false};
    case CodecId::Int8Channel: return {8, true};
    case CodecId::Int4Token: return {4, false};
    case CodecId::Int4Channel: return {4, true};
    case CodecId::Kivi2: return {2, false};
    default: fail(Code::Internal, "not a baseline codec");
  }
}

size_t stream_bytes(const Shape& s, int bits) { return (size_t(s.tokens) * s.channels() * bits + 7) / 8; }

// kivi2: tokens of a plane that are 2-bit coded (the rest, the most recent, stay fp16). Keys: whole
// multiples of R (KIVI quantises keys R tokens at a time); values: all but the last R.
size_t kivi_quantized_tokens(size_t T, uint32_t R, bool value_plane) {
  if (R == 0) return T;
  if (value_plane) return T <= R ? 0 : T - R;
  return T - T % R;
}

size_t kivi_stream_bytes(const Shape& s, uint32_t R, bool value_plane) {
  const size_t T = s.tokens, C = static_cast<size_t>(s.channels()), Tq = kivi_quantized_tokens(T, R, value_plane);
  return (Tq * C * 2 + 7) / 8 + (T - Tq) * C * 2;
}

// Scale groups of a plane; for kivi2 over its first `tokens` tokens (the 2-bit part).
size_t n_scale_groups(const Shape& s, Kind k, uint32_t kivi_group, bool value_plane, size_t tokens) {
  const size_t T = tokens, C = static_cast<size_t>(s.channels());
  if (k.bits == 16) return 0;
  if (k.bits == 2) {
    size_t g = kivi_group;
    return value_plane ? T * ((C + g - 1) / g) : ((T + g - 1) / g) * C;
  }
  return k.per_channel ? C : T;
}

void put_code(uint8_t* stream, size_t i, int bits, uint32_t code) {
  if (bits == 8) stream[i] = static_cast<uint8_t>(code);
  else if (bits == 4) stream[i / 2] |= static_cast<uint8_t>((code & 15u) << (4 * (i % 2)));
  else stream[i / 4] |= static_cast<uint8_t>((code & 3u) << (2 * (i % 4)));
}
uint32_t get_code(const uint8_t* stream, size_t i, int bits) {
  if (bits == 8) return stream[i];
  if (bits == 4) return (stream[i / 2] >> (4 * (i % 2))) & 15u;
  return (stream[i / 4] >> (2 * (i % 4))) & 3u;
}
int32_t signed_code(uint32_t code, int bits) {
  return bits == 8 ? static_cast<int32_t>(static_cast<int8_t>(code)) : (code & 8u ? int32_t(code) - 16 : int32_t(code));
}

// n values from element `first` of a host KV buffer as IEEE halves (little-endian) at dst.
void write_halves(const KvInput& in, size_t first, size_t n, uint8_t* dst) {
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = f32_to_f16(load_value(in.data, in.dtype, first + i));
    dst[2 * i] = static_cast<uint8_t>(h);
    dst[2 * i + 1] = static_cast<uint8_t>(h >> 8);
  }
}

// n halves from src into elements [first, first + n) of out; false if one is Inf or NaN (the encoder
// never writes those).
bool read_halves(const uint8_t* src, size_t n, void* out, DType out_type, size_t first) {
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    uint16_t h = read_u16(src + 2 * i);
    if ((h & 0x7c00u) == 0x7c00u) finite = false;
    store_value(out, out_type, first + i, f16_to_f32(h));
  }
  return finite;
}

float f16_clamped(float v) { return f16_to_f32(f32_to_f16(std::max(-65504.0f, std::min(65504.0f, v)))); }

// KIVI group g of plane p: the elements it covers, as (token, channel) ranges.
struct Range {
  size_t t0, t1, c0, c1;
};
Range kivi_range(const Shape& s, uint32_t G, bool value_plane, size_t g, size_t tokens) {
  const size_t T = tokens, C = static_cast<size_t>(s.channels());
  if (value_plane) {
    size_t per = (C + G - 1) / G, t = g / per, c0 = (g % per) * G;
    return {t, t + 1, c0, std::min(C, c0 + G)};
  }
  size_t t0 = (g / C) * G, c = g % C;
  return {t0, std::min(T, t0 + G), c, c + 1};
}

}  // namespace

std::vector<uint8_t> encode_baseline(CodecId id, uint8_t level, const KvInput& in, const BaselineOptions& opt) {
  check_finite(in);
  const Kind k = kind_of(id);
  const Shape& s = in.shape;
  const size_t planes = size_t(s.layers) * 2, T = s.tokens, C = static_cast<size_t>(s.channels());
  const uint32_t G = opt.kivi_group, R = opt.kivi_residual;
  if (k.bits == 2 && (G < 1 || G > 65535)) fail(Code::Arg, "kivi2: group size must be in 1..65535");
  if (k.bits == 2 && R > 65535) fail(Code::Arg, "kivi2: residual must be in 0..65535");
  std::vector<std::vector<uint8_t>> streams(planes);
  for (size_t p = 0; p < planes; ++p)
    streams[p].assign(k.bits == 2 ? kivi_stream_bytes(s, R, p % 2 == 1) : stream_bytes(s, k.bits), 0);
  std::vector<std::vector<uint16_t>> side(planes);
  auto at = [&](size_t p, size_t t, size_t c) { return load_value(in.data, in.dtype, (p * T + t) * C + c); };

  cpu::parallel_for(planes, 1, [&](size_t b, size_t e) {
    for (size_t p = b; p < e; ++p) {
      uint8_t* st = streams[p].data();
      if (k.bits == 16) {
        write_halves(in, p * T * C, T * C, st);
      } else if (k.bits == 2) {
        const bool vp = p % 2 == 1;
        const size_t Tq = kivi_quantized_tokens(T, R, vp);
        size_t ng = n_scale_groups(s, k, G, vp, Tq);
        for (size_t g = 0; g < ng; ++g) {
          Range r = kivi_range(s, G, vp, g, Tq);
          float mn = INFINITY, mx = -INFINITY;
          for (size_t t = r.t0; t < r.t1; ++t)
            for (size_t c = r.c0; c < r.c1; ++c) {
              float v = at(p, t, c);
              mn = std::min(mn, v);
              mx = std::max(mx, v);
            }
          float mn16 = f16_clamped(mn);
          float step = f16_clamped((mx - mn16) / 3.0f);
          side[p].push_back(f32_to_f16(mn16));
          side[p].push_back(f32_to_f16(step));
          float inv = step > 0 ? 1.0f / step : 0.0f;
          for (size_t t = r.t0; t < r.t1; ++t)
            for (size_t c = r.c0; c < r.c1; ++c) {
              float q = std::rint((at(p, t, c) - mn16) * inv);
              put_code(st, t * C + c, 2, static_cast<uint32_t>(std::max(0.0f, std::min(3.0f, q))));
            }
        }
        write_halves(in, (p * T + Tq) * C, (T - Tq) * C, st + (Tq * C * 2 + 7) / 8);
      } else {
        const int32_t m = k.bits == 8 ? 127 : 7;
        const size_t ng = k.per_channel ? C : T, inner = k.per_channel ? T : C;
        for (size_t g = 0; g < ng; ++g) {
          float mx = 0.0f;
          for (size_t j = 0; j < inner; ++j)
            mx = std::max(mx, std::fabs(k.per_channel ? at(p, j, g) : at(p, g, j)));
          uint16_t sc = bf16_round_up(mx);
          side[p].push_back(sc);
          float inv = quant_inv(bf16_value(sc), m);
          for (size_t j = 0; j < inner; ++j) {
            size_t t = k.per_channel ? j : g, c = k.per_channel ? g : j;
            int32_t q = quantize_sym(at(p, t, c), inv, m);
            put_code(st, t * C + c, k.bits, static_cast<uint32_t>(q) & (k.bits == 8 ? 0xffu : 0xfu));
          }
        }
      }
    }
  });

  ContainerParts parts;
  parts.meta.codec = id;
  parts.meta.level = level;
  parts.meta.shape = s;
  parts.meta.fingerprint = in.fingerprint;
  if (k.bits == 2) {
    put_u16(parts.meta.config, static_cast<uint16_t>(G));
    if (R > 0) put_u16(parts.meta.config, static_cast<uint16_t>(R));  // absent: no residual (format v1 as before)
  }
  parts.positions = in.positions;
  for (auto& sd : side)
    for (uint16_t v : sd) put_u16(parts.side, v);
  std::vector<uint32_t> crcs;
  for (auto& st : streams) {
    parts.lengths.push_back(static_cast<uint32_t>(st.size()));
    crcs.push_back(crc32(st.data(), st.size()));
  }
  parts.payload_check = payload_check(crcs.data(), crcs.size());
  size_t off = 0;
  std::vector<uint8_t> out = write_container(parts, &off);
  for (auto& st : streams) {
    std::memcpy(out.data() + off, st.data(), st.size());
    off += st.size();
  }
  return out;
}

void decode_baseline_host(const Parsed& p, void* out, DType out_type) {
  const Kind k = kind_of(p.meta.codec);
  const Shape& s = p.meta.shape;
  const size_t planes = size_t(s.layers) * 2, T = s.tokens, C = static_cast<size_t>(s.channels());
  uint32_t G = 0, R = 0;
  if (k.bits == 2) {
    if (p.meta.config.size() != 2 && p.meta.config.size() != 4) format_error("kivi2 config length");
    G = read_u16(p.meta.config.data());
    if (G < 1) format_error("kivi2 group size 0");
    if (p.meta.config.size() == 4) {
      R = read_u16(p.meta.config.data() + 2);
      if (R < 1) format_error("kivi2 residual 0 (a container without residual omits the field)");
    }
  } else if (!p.meta.config.empty()) {
    format_error("unexpected config for " + std::string(codec_name(p.meta.codec)));
  }
  if (p.meta.flags != 0) format_error("unknown flags");
  auto quantized = [&](size_t q) { return k.bits == 2 ? kivi_quantized_tokens(T, R, q % 2 == 1) : T; };
  std::vector<size_t> side_off(planes + 1, 0);
  for (size_t q = 0; q < planes; ++q)
    side_off[q + 1] = side_off[q] + 2 * (k.bits == 2 ? 2 : 1) * n_scale_groups(s, k, G, q % 2 == 1, quantized(q));
  if (p.side_bytes != side_off[planes]) format_error("SIDE length");
  if (p.n_streams != planes) format_error("stream count");
  for (size_t q = 0; q < planes; ++q)
    if (p.offsets[q + 1] - p.offsets[q] != (k.bits == 2 ? kivi_stream_bytes(s, R, q % 2 == 1) : stream_bytes(s, k.bits)))
      format_error("stream length");
  for (size_t i = 0; i < p.side_bytes / 2; ++i) {
    uint16_t h = read_u16(p.side + 2 * i);
    bool finite = k.bits == 2 ? (h & 0x7c00u) != 0x7c00u : ((h >> 7) & 0xffu) <= 127 + 101;
    if (!finite) format_error("non-finite scale");
  }
  verify_payload(p);

  std::vector<uint8_t> bad(planes, 0);
  cpu::parallel_for(planes, 1, [&](size_t b, size_t e) {
    for (size_t q = b; q < e; ++q) {
      const uint8_t* st = p.payload + p.offsets[q];
      const uint8_t* sd = p.side + side_off[q];
      const size_t base = q * T * C;
      if (k.bits == 16) {
        if (!read_halves(st, T * C, out, out_type, base)) bad[q] = 1;
      } else if (k.bits == 2) {
        const bool vp = q % 2 == 1;
        const size_t Tq = quantized(q);
        size_t ng = n_scale_groups(s, k, G, vp, Tq);
        for (size_t g = 0; g < ng; ++g) {
          Range r = kivi_range(s, G, vp, g, Tq);
          float mn = f16_to_f32(read_u16(sd + 4 * g)), step = f16_to_f32(read_u16(sd + 4 * g + 2));
          for (size_t t = r.t0; t < r.t1; ++t)
            for (size_t c = r.c0; c < r.c1; ++c)
              store_value(out, out_type, base + t * C + c, mn + static_cast<float>(get_code(st, t * C + c, 2)) * step);
        }
        if (!read_halves(st + (Tq * C * 2 + 7) / 8, (T - Tq) * C, out, out_type, base + Tq * C)) bad[q] = 1;
      } else {
        const int32_t m = k.bits == 8 ? 127 : 7;
        for (size_t t = 0; t < T; ++t)
          for (size_t c = 0; c < C; ++c) {
            float step = quant_step(bf16_value(read_u16(sd + 2 * (k.per_channel ? c : t))), m);
            int32_t v = signed_code(get_code(st, t * C + c, k.bits), k.bits);
            store_value(out, out_type, base + t * C + c, static_cast<float>(v) * step);
          }
      }
    }
  });
  for (size_t q = 0; q < planes; ++q)
    if (bad[q]) format_error("an fp16 value is Inf or NaN");
}

}  // namespace kv::codec
