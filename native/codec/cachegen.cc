// The paper's CacheGen codec on the host: anchor/delta quantisation per (layer, K|V, channel),
// per-layer levels, rANS with one stream per (layer, K|V, token block, channel). The per-stream
// math lives in cachegen_math.h, shared with the CUDA kernels, so both write the same bytes.
//
// SIDE: anchor steps (L*2*C bf16), delta steps (L*2*C bf16), then the table set when shipped.
// Config (META): u8 G, u8 prob bits (12), u16 stream tokens, u64 profile hash (0 = tables shipped),
// then per (layer, K|V): u8 mA, u8 mD.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "../core/status.h"
#include "../cpu/parallel.h"
#include "cachegen_math.h"
#include "codec.h"
#include "crc32.h"

namespace kv::codec {
namespace {

struct FreqTable {
  uint32_t freq[kMaxAlphabet + 1];
  uint32_t cum[kMaxAlphabet + 2];
  bool ok;
};

FreqTable table_from_codes(const uint8_t* codes, uint32_t n) {
  FreqTable t{};
  t.ok = freqs_from_codes(codes, n, kProbBits, t.freq, t.cum);
  return t;
}

void check_levels(const std::vector<uint8_t>& m, size_t planes, const char* what) {
  if (m.size() != planes) fail(Code::Arg, std::string("cachegen: ") + what + " needs one level per (layer, K|V)");
  for (uint8_t v : m)
    if (v < 1 || v > kMaxLevel) fail(Code::Arg, std::string("cachegen: ") + what + " levels must be in 1..31");
}

// Offsets of each table inside a table set.
struct TableLayout {
  std::vector<size_t> anchor, delta;  // per plane; per (plane, channel)
  size_t bytes = 0;
};

TableLayout table_layout(const Shape& s, const std::vector<uint8_t>& ma, const std::vector<uint8_t>& md) {
  TableLayout tl;
  const size_t planes = size_t(s.layers) * 2, C = static_cast<size_t>(s.channels());
  tl.anchor.resize(planes);
  tl.delta.resize(planes * C);
  size_t off = 0;
  for (size_t p = 0; p < planes; ++p) {
    tl.anchor[p] = off;
    off += 2u * ma[p] + 1;
  }
  for (size_t p = 0; p < planes; ++p)
    for (size_t c = 0; c < C; ++c) {
      tl.delta[p * C + c] = off;
      off += 2u * md[p] + 1;
    }
  tl.bytes = off;
  return tl;
}

}  // namespace

uint32_t cachegen_check_options(const CachegenOptions& opt, size_t planes, uint32_t tokens) {
  check_levels(opt.m_anchor, planes, "anchor");
  check_levels(opt.m_delta, planes, "delta");
  if (opt.f_anchor.size() != planes || opt.f_delta.size() != planes)
    fail(Code::Arg, "cachegen: one step fraction per (layer, K|V) expected");
  for (size_t p = 0; p < planes; ++p)
    if (!(opt.f_anchor[p] >= 0.0f && opt.f_anchor[p] <= 16.0f && opt.f_delta[p] >= 0.0f && opt.f_delta[p] <= 16.0f))
      fail(Code::Arg, "cachegen: step fractions must be in [0, 16]");
  if (opt.group < 1 || opt.group > 255) fail(Code::Arg, "cachegen: group size must be in 1..255");
  if (!opt.raw.empty() && opt.raw.size() != planes) fail(Code::Arg, "cachegen: one reference flag per (layer, K|V) expected");
  uint32_t st = opt.stream_tokens;
  if (st == 0) {
    const uint32_t blocks = (tokens + 1023) / 1024, per = (tokens + blocks - 1) / blocks;
    st = ((per + opt.group - 1) / opt.group) * opt.group;
  }
  if (st % opt.group != 0 || st > 65535 || st < opt.group)
    fail(Code::Arg, "cachegen: stream tokens must be a multiple of the group size, at most 65535");
  return st;
}

size_t cachegen_table_bytes(const Shape& s, const std::vector<uint8_t>& ma, const std::vector<uint8_t>& md) {
  return table_layout(s, ma, md).bytes;
}

void cachegen_tables(const Shape& s, const std::vector<uint8_t>& ma, const std::vector<uint8_t>& md,
                     std::vector<uint32_t>& offsets, std::vector<uint8_t>& sizes) {
  TableLayout tl = table_layout(s, ma, md);
  const size_t planes = ma.size(), C = static_cast<size_t>(s.channels());
  offsets.clear();
  sizes.clear();
  for (size_t p = 0; p < planes; ++p) {
    offsets.push_back(static_cast<uint32_t>(tl.anchor[p]));
    sizes.push_back(static_cast<uint8_t>(2 * ma[p] + 1));
  }
  for (size_t i = 0; i < planes * C; ++i) {
    offsets.push_back(static_cast<uint32_t>(tl.delta[i]));
    sizes.push_back(static_cast<uint8_t>(2 * md[i / C] + 1));
  }
}

namespace {

struct Prepared {
  size_t planes, C, T;
  uint32_t group, stream_tokens, blocks;
  std::vector<uint16_t> scale_a, scale_d;
  std::vector<uint8_t> raw;  // per plane
};

// Per channel: the anchor steps, then the maxima under both references (cg_delta_maxabs).
void channel_maxima(const KvInput& in, const CachegenOptions& opt, Prepared& pr, std::vector<float>& max_delta,
                    std::vector<float>& max_raw) {
  std::vector<float> maxabs(pr.planes * pr.C);
  auto loader = [&](size_t i) {
    size_t p = i / pr.C, c = i % pr.C;
    return [&in, &pr, p, c](uint32_t t) { return load_value(in.data, in.dtype, (p * pr.T + t) * pr.C + c); };
  };
  const uint32_t T = static_cast<uint32_t>(pr.T);
  cpu::parallel_for(pr.planes * pr.C, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) maxabs[i] = cg_anchor_maxabs(loader(i), T, pr.group);
  });
  pr.scale_a.resize(pr.planes * pr.C);
  for (size_t p = 0; p < pr.planes; ++p)
    cg_plane_steps(&maxabs[p * pr.C], &maxabs[p * pr.C], static_cast<uint32_t>(pr.C), opt.f_anchor[p], opt.m_anchor[p], &pr.scale_a[p * pr.C]);
  max_delta.resize(pr.planes * pr.C);
  max_raw.resize(pr.planes * pr.C);
  cpu::parallel_for(pr.planes * pr.C, 16, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      size_t p = i / pr.C;
      CgChannel ch = cg_channel(pr.scale_a[i], 0, opt.m_anchor[p], opt.m_delta[p]);
      cg_delta_maxabs(loader(i), T, pr.group, ch, &max_delta[i], &max_raw[i]);
    }
  });
}

// Steps and references of every plane; the channel maxima too when asked.
Prepared prepare(const KvInput& in, const CachegenOptions& opt, std::vector<float>* max_delta_out = nullptr,
                 std::vector<float>* max_raw_out = nullptr) {
  check_finite(in);
  Prepared pr;
  pr.planes = size_t(in.shape.layers) * 2;
  pr.C = static_cast<size_t>(in.shape.channels());
  pr.T = in.shape.tokens;
  pr.stream_tokens = cachegen_check_options(opt, pr.planes, in.shape.tokens);
  pr.group = opt.group;
  pr.blocks = static_cast<uint32_t>((pr.T + pr.stream_tokens - 1) / pr.stream_tokens);
  std::vector<float> max_delta, max_raw;
  channel_maxima(in, opt, pr, max_delta, max_raw);
  pr.raw.resize(pr.planes);
  pr.scale_d.resize(pr.planes * pr.C);
  for (size_t p = 0; p < pr.planes; ++p) {
    const float* md = &max_delta[p * pr.C];
    const float* mr = &max_raw[p * pr.C];
    pr.raw[p] = opt.raw.empty() ? cg_plane_raw(md, mr, static_cast<uint32_t>(pr.C)) : opt.raw[p] != 0;
    cg_plane_steps(md, pr.raw[p] ? mr : md, static_cast<uint32_t>(pr.C), opt.f_delta[p], opt.m_delta[p], &pr.scale_d[p * pr.C]);
  }
  if (max_delta_out) *max_delta_out = std::move(max_delta);
  if (max_raw_out) *max_raw_out = std::move(max_raw);
  return pr;
}

// Symbol counts of the whole span in table-set layout.
void count_into(const KvInput& in, const CachegenOptions& opt, const Prepared& pr, const TableLayout& tl,
                std::vector<uint64_t>& counts) {
  cpu::parallel_for(pr.planes, 1, [&](size_t b, size_t e) {
    for (size_t p = b; p < e; ++p) {
      std::vector<uint32_t> ha(2u * opt.m_anchor[p] + 1, 0), hd(2u * opt.m_delta[p] + 1);
      for (size_t c = 0; c < pr.C; ++c) {
        std::fill(hd.begin(), hd.end(), 0u);
        CgChannel ch = cg_channel(pr.scale_a[p * pr.C + c], pr.scale_d[p * pr.C + c], opt.m_anchor[p], opt.m_delta[p],
                                  pr.raw[p] != 0);
        auto load = [&](uint32_t t) { return load_value(in.data, in.dtype, (p * pr.T + t) * pr.C + c); };
        cg_channel_histogram(load, static_cast<uint32_t>(pr.T), pr.group, ch, [&](uint32_t s) { ha[s] += 1; },
                             hd.data());
        for (size_t s = 0; s < hd.size(); ++s) counts[tl.delta[p * pr.C + c] + s] += hd[s];
      }
      for (size_t s = 0; s < ha.size(); ++s) counts[tl.anchor[p] + s] += ha[s];
    }
  });
}

// Codes of one table from its counts.
void codes_of(const uint64_t* counts, size_t n, uint8_t* codes, uint64_t smoothing) {
  log_codes_from_counts(counts, static_cast<uint32_t>(n), codes, smoothing);
}

std::vector<uint8_t> codes_from_counts(const std::vector<uint64_t>& counts, const TableLayout& tl,
                                       const std::vector<uint8_t>& ma, const std::vector<uint8_t>& md, size_t C,
                                       uint64_t smoothing) {
  std::vector<uint8_t> codes(tl.bytes);
  for (size_t p = 0; p < ma.size(); ++p) {
    codes_of(&counts[tl.anchor[p]], 2u * ma[p] + 1, &codes[tl.anchor[p]], smoothing);
    for (size_t c = 0; c < C; ++c)
      codes_of(&counts[tl.delta[p * C + c]], 2u * md[p] + 1, &codes[tl.delta[p * C + c]], smoothing);
  }
  return codes;
}

}  // namespace

void cachegen_reference_sums(const KvInput& in, const CachegenOptions& opt, std::vector<double>& sums) {
  CachegenOptions o = opt;
  o.raw.clear();
  std::vector<float> max_delta, max_raw;
  Prepared pr = prepare(in, o, &max_delta, &max_raw);
  if (sums.empty()) sums.assign(pr.planes * 2, 0.0);
  if (sums.size() != pr.planes * 2) fail(Code::Arg, "cachegen: reference sums do not match the model's shape");
  const uint32_t C = static_cast<uint32_t>(pr.C);
  for (size_t p = 0; p < pr.planes; ++p) {
    sums[2 * p] = cg_add_rounded(sums[2 * p], &max_delta[p * pr.C], C);
    sums[2 * p + 1] = cg_add_rounded(sums[2 * p + 1], &max_raw[p * pr.C], C);
  }
}

void cachegen_count(const KvInput& in, const CachegenOptions& opt, std::vector<uint64_t>& counts) {
  Prepared pr = prepare(in, opt);
  TableLayout tl = table_layout(in.shape, opt.m_anchor, opt.m_delta);
  if (counts.empty()) counts.assign(tl.bytes, 0);
  if (counts.size() != tl.bytes) fail(Code::Arg, "cachegen: profile counts do not match the model's shape and level");
  count_into(in, opt, pr, tl, counts);
}

std::vector<uint8_t> cachegen_profile_codes(const std::vector<uint64_t>& counts, const Shape& s,
                                            const std::vector<uint8_t>& ma, const std::vector<uint8_t>& md) {
  TableLayout tl = table_layout(s, ma, md);
  if (counts.size() != tl.bytes) fail(Code::Arg, "cachegen: profile counts do not match the model's shape and level");
  return codes_from_counts(counts, tl, ma, md, static_cast<size_t>(s.channels()), 1);
}

std::vector<uint8_t> encode_cachegen(uint8_t level, const KvInput& in, const CachegenOptions& opt) {
  Prepared pr = prepare(in, opt);
  TableLayout tl = table_layout(in.shape, opt.m_anchor, opt.m_delta);
  const bool from_profile = opt.profile_tables != nullptr;
  std::vector<uint8_t> codes;
  const uint8_t* tables;
  if (from_profile) {
    if (opt.profile_table_bytes != tl.bytes)
      fail(Code::Arg, "cachegen: the profile's tables (" + std::to_string(opt.profile_table_bytes) +
                          " bytes) do not fit this KV shape and level (" + std::to_string(tl.bytes) + " bytes)");
    tables = opt.profile_tables;
    // A symbol of probability 0 could not be coded: profiles give every symbol a non-zero code.
    for (size_t i = 0; i < tl.bytes; ++i)
      if (tables[i] == 0) fail(Code::Arg, "cachegen: the profile gives a symbol probability 0 (not a kvlab profile?)");
  } else {
    std::vector<uint64_t> counts(tl.bytes, 0);
    count_into(in, opt, pr, tl, counts);
    codes = codes_from_counts(counts, tl, opt.m_anchor, opt.m_delta, pr.C, 0);
    tables = codes.data();
  }
  std::vector<FreqTable> ft_a(pr.planes), ft_d(pr.planes * pr.C);
  for (size_t p = 0; p < pr.planes; ++p) {
    ft_a[p] = table_from_codes(tables + tl.anchor[p], 2u * opt.m_anchor[p] + 1);
    for (size_t c = 0; c < pr.C; ++c)
      ft_d[p * pr.C + c] = table_from_codes(tables + tl.delta[p * pr.C + c], 2u * opt.m_delta[p] + 1);
  }

  const size_t n_streams = pr.planes * pr.blocks * pr.C;
  std::vector<std::vector<uint8_t>> bufs(n_streams);
  std::vector<uint32_t> lengths(n_streams), crcs(n_streams);
  cpu::parallel_for(n_streams, 8, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      size_t c = i % pr.C, blk = (i / pr.C) % pr.blocks, p = i / (pr.C * pr.blocks);
      uint32_t t0 = static_cast<uint32_t>(blk * pr.stream_tokens);
      uint32_t t1 = static_cast<uint32_t>(std::min<size_t>(pr.T, t0 + size_t(pr.stream_tokens)));
      const FreqTable& fa = ft_a[p];
      const FreqTable& fd = ft_d[p * pr.C + c];
      CgChannel ch = cg_channel(pr.scale_a[p * pr.C + c], pr.scale_d[p * pr.C + c], opt.m_anchor[p], opt.m_delta[p],
                                pr.raw[p] != 0);
      auto load = [&](uint32_t t) { return load_value(in.data, in.dtype, (p * pr.T + t) * pr.C + c); };
      std::vector<uint8_t> buf(4 + 2 * size_t(t1 - t0));
      uint8_t* end = buf.data() + buf.size();
      uint32_t len = cg_encode_stream(load, t0, t1, pr.group, ch, fa.cum, fd.cum, end);
      bufs[i].assign(end - len, end);
      lengths[i] = len;
      crcs[i] = crc32(end - len, len);
    }
  });

  ContainerParts parts;
  parts.meta.codec = CodecId::Cachegen;
  parts.meta.level = level;
  parts.meta.flags = from_profile ? kFlagProfileTables : 0;
  parts.meta.shape = in.shape;
  parts.meta.fingerprint = in.fingerprint;
  std::vector<uint8_t>& cfg = parts.meta.config;
  cfg.push_back(static_cast<uint8_t>(pr.group));
  cfg.push_back(static_cast<uint8_t>(kProbBits));
  put_u16(cfg, static_cast<uint16_t>(pr.stream_tokens));
  uint64_t hash = from_profile ? opt.profile_hash : 0;
  for (int k = 0; k < 8; ++k) cfg.push_back(static_cast<uint8_t>(hash >> (8 * k)));
  for (size_t p = 0; p < pr.planes; ++p) {
    cfg.push_back(opt.m_anchor[p]);
    cfg.push_back(static_cast<uint8_t>(opt.m_delta[p] | (pr.raw[p] ? kRawFlag : 0)));
  }
  parts.positions = in.positions;
  parts.side.reserve(pr.planes * pr.C * 4 + (from_profile ? 0 : tl.bytes));
  for (uint16_t v : pr.scale_a) put_u16(parts.side, v);
  for (uint16_t v : pr.scale_d) put_u16(parts.side, v);
  if (!from_profile) parts.side.insert(parts.side.end(), codes.begin(), codes.end());
  parts.lengths = std::move(lengths);
  parts.payload_check = payload_check(crcs.data(), crcs.size());
  size_t off = 0;
  std::vector<uint8_t> out = write_container(parts, &off);
  for (size_t i = 0; i < n_streams; ++i) {
    std::memcpy(out.data() + off, bufs[i].data(), bufs[i].size());
    off += bufs[i].size();
  }
  return out;
}

CachegenConfig cachegen_config(const Parsed& p, const DecodeProfile* profile) {
  const Shape& s = p.meta.shape;
  const size_t planes = size_t(s.layers) * 2, C = static_cast<size_t>(s.channels());
  const std::vector<uint8_t>& cfg = p.meta.config;
  if (cfg.size() != 12 + 2 * planes) format_error("cachegen config length");
  CachegenConfig cc;
  cc.group = cfg[0];
  if (cfg[1] != kProbBits) format_error("cachegen probability precision " + std::to_string(cfg[1]));
  cc.stream_tokens = read_u16(&cfg[2]);
  if (cc.group < 1 || cc.stream_tokens < cc.group || cc.stream_tokens % cc.group != 0)
    format_error("cachegen group / stream tokens");
  cc.blocks = (s.tokens + cc.stream_tokens - 1) / cc.stream_tokens;
  for (int k = 0; k < 8; ++k) cc.profile_hash |= uint64_t(cfg[4 + k]) << (8 * k);
  for (size_t q = 0; q < planes; ++q) {
    cc.m_anchor.push_back(cfg[12 + 2 * q]);
    cc.m_delta.push_back(cfg[13 + 2 * q] & ~kRawFlag);
    cc.raw.push_back((cfg[13 + 2 * q] & kRawFlag) ? 1 : 0);
    if (cc.m_anchor.back() < 1 || cc.m_anchor.back() > kMaxLevel || cc.m_delta.back() < 1 ||
        cc.m_delta.back() > kMaxLevel)
      format_error("cachegen levels out of range");
  }
  if (p.n_streams != planes * cc.blocks * C) format_error("cachegen stream count");
  const size_t table_bytes = cachegen_table_bytes(s, cc.m_anchor, cc.m_delta);
  const size_t scale_bytes = planes * C * 4;
  const bool from_profile = p.meta.flags & kFlagProfileTables;
  if (p.meta.flags & ~kFlagProfileTables) format_error("unknown flags");
  if (p.side_bytes != scale_bytes + (from_profile ? 0 : table_bytes)) format_error("cachegen SIDE length");
  cc.scales_a = p.side;
  cc.scales_d = p.side + planes * C * 2;
  for (size_t i = 0; i < planes * C * 2; ++i)
    if (((read_u16(p.side + 2 * i) >> 7) & 0xffu) > 127 + 101) format_error("step out of range");
  if (from_profile) {
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(cc.profile_hash));
    if (!profile || !profile->tables)
      fail(Code::NotFound, std::string("this container's tables are in the codec profile ") + hex +
                               "; pass that profile to decode");
    if (profile->hash != cc.profile_hash)
      fail(Code::Arg, std::string("the profile given is not the one this container was encoded with (") + hex + ")");
    if (profile->bytes != table_bytes) fail(Code::Arg, "the profile's tables do not fit this container's shape");
    cc.tables = profile->tables;
  } else {
    if (cc.profile_hash != 0) format_error("profile hash set without the profile flag");
    cc.tables = p.side + scale_bytes;
  }
  cc.table_bytes = table_bytes;
  return cc;
}

void decode_cachegen_host(const Parsed& p, void* out, DType out_type, const DecodeProfile* profile) {
  CachegenConfig cc = cachegen_config(p, profile);
  const Shape& s = p.meta.shape;
  const size_t planes = size_t(s.layers) * 2, C = static_cast<size_t>(s.channels()), T = s.tokens;
  TableLayout tl = table_layout(s, cc.m_anchor, cc.m_delta);
  std::vector<FreqTable> ft_a(planes), ft_d(planes * C);
  for (size_t q = 0; q < planes; ++q) {
    const bool raw = cc.raw[q] != 0;
    ft_a[q] = table_from_codes(cc.tables + tl.anchor[q], 2u * cc.m_anchor[q] + 1);
    if (!ft_a[q].ok && cg_table_needed(true, raw, T, cc.group)) format_error("empty anchor table");
    for (size_t c = 0; c < C; ++c) {
      ft_d[q * C + c] = table_from_codes(cc.tables + tl.delta[q * C + c], 2u * cc.m_delta[q] + 1);
      if (!ft_d[q * C + c].ok && cg_table_needed(false, raw, T, cc.group)) format_error("empty delta table");
    }
  }
  verify_payload(p);
  const size_t n_streams = p.n_streams;
  std::vector<uint8_t> bad(n_streams, 0);
  cpu::parallel_for(n_streams, 8, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) {
      size_t c = i % C, blk = (i / C) % cc.blocks, q = i / (C * cc.blocks);
      uint32_t t0 = static_cast<uint32_t>(blk * cc.stream_tokens);
      uint32_t t1 = static_cast<uint32_t>(std::min<size_t>(T, t0 + size_t(cc.stream_tokens)));
      CgChannel ch = cg_channel(read_u16(cc.scales_a + 2 * (q * C + c)), read_u16(cc.scales_d + 2 * (q * C + c)),
                                cc.m_anchor[q], cc.m_delta[q], cc.raw[q] != 0);
      auto store = [&](uint32_t t, float v) { store_value(out, out_type, (q * T + t) * C + c, v); };
      const uint8_t* sp = p.payload + p.offsets[i];
      const uint8_t* se = p.payload + p.offsets[i + 1];
      if (!cg_decode_stream(store, sp, se, t0, t1, cc.group, ch, ft_a[q].cum, ft_d[q * C + c].cum)) bad[i] = 1;
    }
  });
  for (size_t i = 0; i < n_streams; ++i)
    if (bad[i]) format_error("rANS stream " + std::to_string(i) + " does not decode cleanly");
}

}  // namespace kv::codec
