#include "format.h"

#include <cstring>

#include "../core/status.h"
#include "crc32.h"

namespace kv::codec {
namespace {

constexpr Crc32Table kCrcTable = make_crc32_table();
constexpr size_t kMetaFixedBytes = 4 + 16;

void put_bytes(std::vector<uint8_t>& v, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  v.insert(v.end(), b, b + n);
}

uint32_t header_crc(const uint8_t* data) {
  uint32_t c = crc32(data, 12);
  return crc32(data + kFixedHeaderBytes, kNumSections * kDirectoryEntryBytes, c);
}

}  // namespace

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) { return crc32_update(kCrcTable.t, crc, p, n); }

uint32_t payload_check(const uint32_t* crcs, size_t n) {
  uint32_t c = 0;
  for (size_t i = 0; i < n; ++i) c += payload_check_term(crcs[i], i);
  return c;
}

const char* codec_name(CodecId id) {
  switch (id) {
    case CodecId::Fp16: return "fp16";
    case CodecId::Int8Token: return "int8-token";
    case CodecId::Int8Channel: return "int8-channel";
    case CodecId::Int4Token: return "int4-token";
    case CodecId::Int4Channel: return "int4-channel";
    case CodecId::Kivi2: return "kivi2";
    case CodecId::Cachegen: return "cachegen";
    case CodecId::CachegenReleased: return "cachegen-released";
  }
  return "?";
}

uint32_t read_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
uint16_t read_u16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
void put_u32(std::vector<uint8_t>& v, uint32_t x) {
  for (int k = 0; k < 4; ++k) v.push_back(static_cast<uint8_t>(x >> (8 * k)));
}
void put_u16(std::vector<uint8_t>& v, uint16_t x) {
  v.push_back(static_cast<uint8_t>(x));
  v.push_back(static_cast<uint8_t>(x >> 8));
}

void format_error(const std::string& what) { fail(Code::Format, "corrupt KV container: " + what); }

std::vector<uint8_t> write_container(const ContainerParts& parts, size_t* payload_offset) {
  const Meta& m = parts.meta;
  if (m.fingerprint.size() > kMaxFingerprintBytes)
    fail(Code::Arg, "model fingerprint longer than " + std::to_string(kMaxFingerprintBytes) + " bytes");
  if (m.config.size() > kMaxConfigBytes) fail(Code::Internal, "codec config too large");

  std::vector<uint8_t> meta;
  meta.push_back(static_cast<uint8_t>(m.codec));
  meta.push_back(m.level);
  meta.push_back(m.flags);
  meta.push_back(0);
  put_u32(meta, m.shape.layers);
  put_u32(meta, m.shape.tokens);
  put_u32(meta, m.shape.heads);
  put_u32(meta, m.shape.head_dim);
  put_u16(meta, static_cast<uint16_t>(m.fingerprint.size()));
  put_bytes(meta, m.fingerprint.data(), m.fingerprint.size());
  put_u32(meta, static_cast<uint32_t>(m.config.size()));
  put_bytes(meta, m.config.data(), m.config.size());

  std::vector<uint8_t> lengths;
  uint64_t payload = 0;
  for (uint32_t len : parts.lengths) {
    put_u32(lengths, len);
    payload += len;
  }
  // Positions: a run start..start+n-1 (the usual case) is stored as its start.
  std::vector<uint8_t> pos;
  bool run = m.shape.tokens > 0 && int64_t(parts.positions[0]) + m.shape.tokens - 1 <= 0x7fffffff;
  for (uint32_t i = 1; i < m.shape.tokens && run; ++i) run = parts.positions[i] == parts.positions[0] + int32_t(i);
  pos.push_back(run ? 1 : 0);
  if (run) put_u32(pos, static_cast<uint32_t>(parts.positions[0]));
  else
    for (uint32_t i = 0; i < m.shape.tokens; ++i) put_u32(pos, static_cast<uint32_t>(parts.positions[i]));
  const uint64_t sizes[kNumSections] = {meta.size(), pos.size(), parts.side.size(), lengths.size(), payload};
  uint64_t total = kHeaderBytes;
  for (uint64_t s : sizes) total += s;
  if (total > 0xffffffffull) fail(Code::Arg, "the container would exceed 4 GiB; encode a shorter span");

  std::vector<uint8_t> out;
  out.reserve(static_cast<size_t>(total));
  out.resize(kHeaderBytes);
  std::memcpy(out.data(), kMagic, 4);
  out[4] = static_cast<uint8_t>(kFormatVersion);
  out[5] = static_cast<uint8_t>(kFormatVersion >> 8);
  out[6] = static_cast<uint8_t>(kNumSections);
  out[7] = 0;
  uint32_t t32 = static_cast<uint32_t>(total);
  for (int k = 0; k < 4; ++k) out[8 + k] = static_cast<uint8_t>(t32 >> (8 * k));

  put_bytes(out, meta.data(), meta.size());
  put_bytes(out, pos.data(), pos.size());
  put_bytes(out, parts.side.data(), parts.side.size());
  put_bytes(out, lengths.data(), lengths.size());
  *payload_offset = out.size();
  out.resize(static_cast<size_t>(total));

  uint64_t off = kHeaderBytes;
  for (uint32_t i = 0; i < kNumSections; ++i) {
    uint8_t* e = out.data() + kFixedHeaderBytes + i * kDirectoryEntryBytes;
    uint32_t crc = i + 1 == kPayload ? parts.payload_check : crc32(out.data() + off, static_cast<size_t>(sizes[i]));
    const uint32_t fields[4] = {i + 1, static_cast<uint32_t>(off), static_cast<uint32_t>(sizes[i]), crc};
    for (int f = 0; f < 4; ++f)
      for (int k = 0; k < 4; ++k) e[4 * f + k] = static_cast<uint8_t>(fields[f] >> (8 * k));
    off += sizes[i];
  }
  uint32_t hc = header_crc(out.data());
  for (int k = 0; k < 4; ++k) out[12 + k] = static_cast<uint8_t>(hc >> (8 * k));
  return out;
}

Parsed parse_container(const uint8_t* data, size_t size) {
  if (data == nullptr && size > 0) fail(Code::Arg, "parse_container: null data");
  if (size < kHeaderBytes) format_error(std::to_string(size) + " bytes is shorter than the " +
                                        std::to_string(kHeaderBytes) + "-byte header");
  if (std::memcmp(data, kMagic, 4) != 0) format_error("bad magic (not a kvlab KV container)");
  uint16_t version = read_u16(data + 4);
  if (version != kFormatVersion)
    format_error("format version " + std::to_string(version) + " is not supported (this build reads " +
                 std::to_string(kFormatVersion) + ")");
  if (read_u16(data + 6) != kNumSections) format_error("unexpected section count");
  if (read_u32(data + 8) != size)
    format_error("header says " + std::to_string(read_u32(data + 8)) + " bytes but " + std::to_string(size) +
                 " were given (truncated or padded)");
  if (read_u32(data + 12) != header_crc(data)) format_error("header checksum mismatch");

  const uint8_t* sec[kNumSections];
  size_t len[kNumSections];
  uint32_t crc[kNumSections];
  uint64_t expect = kHeaderBytes;
  for (uint32_t i = 0; i < kNumSections; ++i) {
    const uint8_t* e = data + kFixedHeaderBytes + i * kDirectoryEntryBytes;
    if (read_u32(e) != i + 1) format_error("section directory out of order");
    uint64_t off = read_u32(e + 4), n = read_u32(e + 8);
    if (off != expect || off + n > size) format_error("section " + std::to_string(i + 1) + " out of bounds");
    sec[i] = data + off;
    len[i] = static_cast<size_t>(n);
    crc[i] = read_u32(e + 12);
    expect = off + n;
  }
  if (expect != size) format_error("trailing bytes after the payload");
  for (uint32_t i = 0; i + 1 < kNumSections; ++i)
    if (crc32(sec[i], len[i]) != crc[i]) format_error("checksum mismatch in section " + std::to_string(i + 1));

  Parsed p;
  // META
  const uint8_t* m = sec[0];
  size_t ml = len[0];
  if (ml < kMetaFixedBytes + 2) format_error("META section too short");
  if (m[0] < 1 || m[0] > kMaxCodecId) format_error("unknown codec id " + std::to_string(m[0]));
  p.meta.codec = static_cast<CodecId>(m[0]);
  p.meta.level = m[1];
  p.meta.flags = m[2];
  if (m[3] != 0) format_error("reserved META byte is not zero");
  Shape& s = p.meta.shape;
  s.layers = read_u32(m + 4);
  s.tokens = read_u32(m + 8);
  s.heads = read_u32(m + 12);
  s.head_dim = read_u32(m + 16);
  if (s.layers < 1 || s.layers > 65535 || s.heads < 1 || s.heads > 65535 || s.head_dim < 1 || s.head_dim > 65535 ||
      s.tokens < 1 || s.tokens > (1u << 24))
    format_error("implausible shape");
  if (s.values() > (1ull << 40)) format_error("shape describes more than 2^40 values");
  size_t fl = read_u16(m + 20);
  if (fl > kMaxFingerprintBytes || ml < kMetaFixedBytes + 2 + fl + 4) format_error("META fingerprint length");
  p.meta.fingerprint.assign(reinterpret_cast<const char*>(m + 22), fl);
  size_t cl = read_u32(m + 22 + fl);
  if (cl > kMaxConfigBytes || ml != kMetaFixedBytes + 2 + fl + 4 + cl) format_error("META config length");
  p.meta.config.assign(m + 26 + fl, m + 26 + fl + cl);
  // POSITIONS
  if (len[1] < 1) format_error("POSITIONS is empty");
  if (sec[1][0] == 1) {
    if (len[1] != 5) format_error("POSITIONS run length");
    int64_t start = static_cast<int32_t>(read_u32(sec[1] + 1));
    if (start < 0 || start + s.tokens - 1 > 0x7fffffff) format_error("POSITIONS run out of range");
    p.positions.resize(s.tokens);
    for (uint32_t i = 0; i < s.tokens; ++i) p.positions[i] = static_cast<int32_t>(start + i);
  } else if (sec[1][0] == 0) {
    if (len[1] != 1 + size_t(s.tokens) * 4)
      format_error("POSITIONS holds " + std::to_string(len[1]) + " bytes, expected " + std::to_string(1 + size_t(s.tokens) * 4));
    p.positions.resize(s.tokens);
    for (uint32_t i = 0; i < s.tokens; ++i) p.positions[i] = static_cast<int32_t>(read_u32(sec[1] + 1 + 4 * i));
  } else {
    format_error("unknown POSITIONS mode");
  }
  // SIDE, LENGTHS, PAYLOAD
  p.side = sec[2];
  p.side_bytes = len[2];
  if (len[3] % 4 != 0) format_error("LENGTHS is not a whole number of u32");
  p.lengths = sec[3];
  p.n_streams = len[3] / 4;
  p.offsets.resize(p.n_streams + 1);
  uint64_t acc = 0;
  for (size_t i = 0; i < p.n_streams; ++i) {
    p.offsets[i] = acc;
    acc += read_u32(p.lengths + 4 * i);
  }
  p.offsets[p.n_streams] = acc;
  if (acc != len[4]) format_error("stream lengths add up to " + std::to_string(acc) + " bytes but PAYLOAD holds " +
                                  std::to_string(len[4]));
  p.payload = sec[4];
  p.payload_bytes = len[4];
  p.payload_offset = static_cast<size_t>(sec[4] - data);
  p.payload_crc = crc[4];
  return p;
}

void verify_payload(const Parsed& p) {
  std::vector<uint32_t> crcs(p.n_streams);
  for (size_t i = 0; i < p.n_streams; ++i)
    crcs[i] = crc32(p.payload + p.offsets[i], static_cast<size_t>(p.offsets[i + 1] - p.offsets[i]));
  if (payload_check(crcs.data(), crcs.size()) != p.payload_crc) format_error("payload checksum mismatch");
}

}  // namespace kv::codec
