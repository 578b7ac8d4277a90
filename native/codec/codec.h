// kvlab's KV codecs on the host: encode a KV span [layer][k|v][token][head][dim] into a container
// (format.h) and decode one back. The binding, the fuzzer and the CUDA path (native/cuda/codec_ops)
// all go through these functions. Every failure is a kv::Error: Format for corrupt bytes, Arg for
// bad options, NotFound for a missing profile.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "../core/dtype.h"
#include "format.h"

namespace kv::codec {

struct KvInput {
  const void* data = nullptr;  // host memory, shape.values() elements of `dtype`
  DType dtype = DType::F16;
  Shape shape;
  const int32_t* positions = nullptr;  // shape.tokens entries
  std::string fingerprint;
};

// Baselines: fp16 raw, int8/int4 per token or per channel (symmetric), kivi2 (2-bit asymmetric,
// keys per channel over groups of `kivi_group` tokens, values per token over groups of `kivi_group`
// channels).
struct BaselineOptions {
  uint32_t kivi_group = 32;
  // KIVI's full-precision residual R (0: none): K keeps its last T mod R tokens in fp16 (T < R: all),
  // V its last R (T <= R: all); the rest is 2-bit, as KIVI leaves a prefilled cache.
  uint32_t kivi_residual = 0;
};
std::vector<uint8_t> encode_baseline(CodecId id, uint8_t level, const KvInput& in, const BaselineOptions& opt);

// The paper's CacheGen codec.
struct CachegenOptions {
  uint32_t group = 10;           // anchor group size G (1..255)
  uint32_t stream_tokens = 1020; // tokens per rANS stream, a multiple of G (<= 65535)
  std::vector<uint8_t> m_anchor; // per (layer, K|V): anchor levels -m..m, 1..31
  std::vector<uint8_t> m_delta;  // per (layer, K|V): delta levels -m..m, 1..31
  // per (layer, K|V): the plane-wide step as a fraction of the channels' mean max |x|
  // (cachegen_math.h cg_plane_steps); 0 = every channel max|x| / m.
  std::vector<float> f_anchor, f_delta;
  // Tables from a profile (not shipped): the profile's table bytes (cachegen_table_bytes long)
  // and its 8-byte hash, which the container records.
  const uint8_t* profile_tables = nullptr;
  size_t profile_table_bytes = 0;
  uint64_t profile_hash = 0;
  // Per (layer, K|V): 1 = code every token directly (no anchors), 0 = as deltas to anchors. Empty: each
  // plane decides from its data (cachegen_math.h cg_plane_raw); a profile fixes it.
  std::vector<uint8_t> raw;
};
std::vector<uint8_t> encode_cachegen(uint8_t level, const KvInput& in, const CachegenOptions& opt);

// Adds each plane's sums of per-channel maxima, [delta, raw] per plane, into sums (planes x 2; empty:
// created): what cg_plane_raw compares, so a profile can choose each plane's reference over all its
// sample spans.
void cachegen_reference_sums(const KvInput& in, const CachegenOptions& opt, std::vector<double>& sums);

// Bytes of a table set: for each (layer, K|V) an anchor table of 2*mA+1 codes, then for each
// (layer, K|V, channel) a delta table of 2*mD+1 codes.
size_t cachegen_table_bytes(const Shape& s, const std::vector<uint8_t>& m_anchor, const std::vector<uint8_t>& m_delta);

// Checks the options of an encode of `planes` (layer, K|V) planes (ArgumentError otherwise) and
// returns the tokens per rANS stream: the options', or when they leave it 0 blocks of at most ~1024
// tokens, equal in size, a multiple of the group. The CPU and CUDA encoders both call it, so they
// accept the same options and cut the same streams.
uint32_t cachegen_check_options(const CachegenOptions& opt, size_t planes, uint32_t tokens);

// Table t of a table set: t < planes is the anchor table of plane t, t = planes + plane * C + c the
// delta table of (plane, c); offsets[t] its first code, sizes[t] its symbol count.
void cachegen_tables(const Shape& s, const std::vector<uint8_t>& m_anchor, const std::vector<uint8_t>& m_delta,
                     std::vector<uint32_t>& offsets, std::vector<uint8_t>& sizes);

// Symbol counts for a profile (same layout as the tables, u32 per symbol), added into `counts`.
void cachegen_count(const KvInput& in, const CachegenOptions& opt, std::vector<uint64_t>& counts);
// Codes from counts (+1 on every symbol so a profile can code any symbol).
std::vector<uint8_t> cachegen_profile_codes(const std::vector<uint64_t>& counts, const Shape& s,
                                            const std::vector<uint8_t>& m_anchor, const std::vector<uint8_t>& m_delta);

// CacheGen as released (LMCache): per (layer, token) symmetric scale, no deltas, 16-bit tables
// shipped per (layer, K|V, channel). `bins` per (layer, K|V).
std::vector<uint8_t> encode_released(uint8_t level, const KvInput& in, const std::vector<uint8_t>& bins);

// Decoding. A cachegen container whose tables come from a profile needs the profile's tables and hash.
struct DecodeProfile {
  const uint8_t* tables = nullptr;
  size_t bytes = 0;
  uint64_t hash = 0;
};

// The decoded configuration of a cachegen container (validated).
struct CachegenConfig {
  uint32_t group = 0, stream_tokens = 0, blocks = 0;
  uint64_t profile_hash = 0;
  std::vector<uint8_t> m_anchor, m_delta;
  std::vector<uint8_t> raw;           // per plane: every token coded directly (see CachegenOptions)
  const uint8_t* scales_a = nullptr;  // L*2*C bf16 (little-endian u16)
  const uint8_t* scales_d = nullptr;
  const uint8_t* tables = nullptr;    // the table set (shipped, or the profile's)
  size_t table_bytes = 0;
};
CachegenConfig cachegen_config(const Parsed& p, const DecodeProfile* profile);

// Decodes into host memory `out` (shape.values() elements of f32, f16 or bf16). Verifies the payload.
void decode_host(const Parsed& p, void* out, DType out_type, const DecodeProfile* profile);

// Reads element i of a host KV buffer as f32.
float load_value(const void* data, DType t, size_t i);
void store_value(void* data, DType t, size_t i, float v);

// Throws Arg when the input holds NaN/Inf or magnitudes the scales cannot represent.
void check_finite(const KvInput& in);

}  // namespace kv::codec
