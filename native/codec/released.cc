// CacheGen as released in LMCache, kept as a preset to compare against: no anchors or deltas; one
// symmetric scale per (layer, K|V, token) shared by every head, q = round(x * M / max|x|) + M with
// M = bins/2 - 1; a frequency table per (layer, K|V, channel) computed from this chunk and shipped
// with it at 16-bit precision, every symbol at least 1/65536 wide; one rANS stream per
// (layer, K|V, channel) over the chunk's tokens.
// SIDE: scales (L*2*T bf16), then per (layer, K|V, channel) 2M+1 u16 frequencies.
// Config: per (layer, K|V) u8 bins.
#include <algorithm>
#include <cstring>
#include <string>

#include "../core/status.h"
#include "../cpu/parallel.h"
#include "codec.h"
#include "crc32.h"
#include "hd.h"
#include "rans.h"

namespace kv::codec {
namespace {

constexpr uint32_t kReleasedBits = 16;

struct Table16 {
  uint32_t n;
  uint32_t freq[64];
  uint32_t cum[65];
};

Table16 normalise(const uint32_t* counts, uint32_t n, uint64_t total) {
  Table16 t{};
  t.n = n;
  const uint64_t room = (1u << kReleasedBits) - n;
  uint64_t sum = 0;
  uint32_t best = 0;
  for (uint32_t s = 0; s < n; ++s) {
    t.freq[s] = 1 + static_cast<uint32_t>(total ? counts[s] * room / total : 0);
    sum += t.freq[s];
    if (counts[s] > counts[best]) best = s;
  }
  t.freq[best] += static_cast<uint32_t>((1u << kReleasedBits) - sum);
  t.cum[0] = 0;
  for (uint32_t s = 0; s < n; ++s) t.cum[s + 1] = t.cum[s] + t.freq[s];
  return t;
}

}  // namespace

std::vector<uint8_t> encode_released(uint8_t level, const KvInput& in, const std::vector<uint8_t>& bins) {
  check_finite(in);
  const Shape& s = in.shape;
  const size_t planes = size_t(s.layers) * 2, T = s.tokens, C = static_cast<size_t>(s.channels());
  if (bins.size() != planes) fail(Code::Arg, "cachegen-released: one bin count per (layer, K|V)");
  for (uint8_t b : bins)
    if (b < 4 || b > 64 || b % 2) fail(Code::Arg, "cachegen-released: bins must be even, 4..64");
  auto at = [&](size_t p, size_t t, size_t c) { return load_value(in.data, in.dtype, (p * T + t) * C + c); };

  std::vector<uint16_t> scales(planes * T);
  cpu::parallel_for(planes * T, 64, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      float mx = 0.0f;
      for (size_t c = 0; c < C; ++c) mx = std::max(mx, fabs_exact(at(i / T, i % T, c)));
      scales[i] = bf16_round_up(mx);
    }
  });
  const size_t n_streams = planes * C;
  std::vector<Table16> tables(n_streams);
  std::vector<std::vector<uint8_t>> bufs(n_streams);
  std::vector<uint32_t> lengths(n_streams), crcs(n_streams);
  cpu::parallel_for(n_streams, 4, [&](size_t b, size_t e) {
    std::vector<uint8_t> sym(T);
    for (size_t i = b; i < e; ++i) {
      size_t p = i / C, c = i % C;
      int32_t M = bins[p] / 2 - 1;
      uint32_t n = 2 * M + 1, counts[64] = {0};
      for (size_t t = 0; t < T; ++t) {
        float inv = quant_inv(bf16_value(scales[p * T + t]), M);
        sym[t] = static_cast<uint8_t>(quantize_sym(at(p, t, c), inv, M) + M);
        counts[sym[t]] += 1;
      }
      tables[i] = normalise(counts, n, T);
      std::vector<uint8_t> buf(4 + 2 * T);
      RansEncoder enc;
      rans_enc_init(enc, buf.data() + buf.size());
      for (size_t t = T; t-- > 0;) rans_enc_put(enc, tables[i].cum[sym[t]], tables[i].freq[sym[t]], kReleasedBits);
      rans_enc_flush(enc);
      bufs[i].assign(enc.ptr, buf.data() + buf.size());
      lengths[i] = static_cast<uint32_t>(bufs[i].size());
      crcs[i] = crc32(bufs[i].data(), bufs[i].size());
    }
  });

  ContainerParts parts;
  parts.meta.codec = CodecId::CachegenReleased;
  parts.meta.level = level;
  parts.meta.shape = s;
  parts.meta.fingerprint = in.fingerprint;
  parts.meta.config = bins;
  parts.positions = in.positions;
  for (uint16_t v : scales) put_u16(parts.side, v);
  for (const Table16& t : tables)
    for (uint32_t k = 0; k < t.n; ++k) put_u16(parts.side, static_cast<uint16_t>(t.freq[k]));
  parts.lengths = std::move(lengths);
  parts.payload_check = payload_check(crcs.data(), crcs.size());
  size_t off = 0;
  std::vector<uint8_t> out = write_container(parts, &off);
  for (auto& b : bufs) {
    std::memcpy(out.data() + off, b.data(), b.size());
    off += b.size();
  }
  return out;
}

void decode_released_host(const Parsed& p, void* out, DType out_type) {
  const Shape& s = p.meta.shape;
  const size_t planes = size_t(s.layers) * 2, T = s.tokens, C = static_cast<size_t>(s.channels());
  const std::vector<uint8_t>& bins = p.meta.config;
  if (p.meta.flags != 0) format_error("unknown flags");
  if (bins.size() != planes) format_error("cachegen-released config length");
  size_t table_bytes = 0;
  for (uint8_t b : bins) {
    if (b < 4 || b > 64 || b % 2) format_error("cachegen-released bins");
    table_bytes += C * 2 * (b - 1);
  }
  if (p.side_bytes != planes * T * 2 + table_bytes) format_error("cachegen-released SIDE length");
  if (p.n_streams != planes * C) format_error("cachegen-released stream count");
  for (size_t i = 0; i < planes * T; ++i)
    if (((read_u16(p.side + 2 * i) >> 7) & 0xffu) > 127 + 101) format_error("scale out of range");
  std::vector<Table16> tables(planes * C);
  const uint8_t* tp = p.side + planes * T * 2;
  for (size_t i = 0; i < planes * C; ++i) {
    Table16& t = tables[i];
    t.n = bins[i / C] - 1;
    t.cum[0] = 0;
    for (uint32_t k = 0; k < t.n; ++k) {
      t.freq[k] = read_u16(tp);
      tp += 2;
      if (t.freq[k] == 0) format_error("zero frequency in a cachegen-released table");
      t.cum[k + 1] = t.cum[k] + t.freq[k];
    }
    if (t.cum[t.n] != (1u << kReleasedBits)) format_error("cachegen-released table does not sum to 65536");
  }
  verify_payload(p);
  std::vector<uint8_t> bad(planes * C, 0);
  cpu::parallel_for(planes * C, 4, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      size_t q = i / C, c = i % C;
      int32_t M = bins[q] / 2 - 1;
      const Table16& t = tables[i];
      RansDecoder d;
      rans_dec_init(d, p.payload + p.offsets[i], p.payload + p.offsets[i + 1]);
      if (d.bad) {
        bad[i] = 1;
        continue;
      }
      for (size_t tok = 0; tok < T; ++tok) {
        uint32_t sym = cum_lookup(t.cum, t.n, rans_dec_slot(d, kReleasedBits));
        rans_dec_advance(d, t.cum[sym], t.freq[sym], kReleasedBits);
        float step = quant_step(bf16_value(read_u16(p.side + 2 * (q * T + tok))), M);
        store_value(out, out_type, (q * T + tok) * C + c, fmul(static_cast<float>(int32_t(sym) - M), step));
      }
      if (!rans_dec_ok(d)) bad[i] = 1;
    }
  });
  for (size_t i = 0; i < planes * C; ++i)
    if (bad[i]) format_error("rANS stream " + std::to_string(i) + " does not decode cleanly");
}

}  // namespace kv::codec
