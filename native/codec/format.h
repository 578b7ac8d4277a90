// The kvlab KV container (src/cachegen/FORMAT.md): a fixed header, a section directory, and the
// sections META, POSITIONS, SIDE, LENGTHS and PAYLOAD, each with its CRC-32. Writing and parsing
// only; what SIDE, LENGTHS and PAYLOAD mean belongs to each codec. The parser validates every
// length, offset and checksum before anything else reads the bytes, and throws kv::Error(Format).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace kv::codec {

constexpr uint8_t kMagic[4] = {'K', 'V', 'L', 'C'};
constexpr uint16_t kFormatVersion = 1;
constexpr uint32_t kNumSections = 5;
constexpr size_t kFixedHeaderBytes = 16;
constexpr size_t kDirectoryEntryBytes = 16;
constexpr size_t kHeaderBytes = kFixedHeaderBytes + kNumSections * kDirectoryEntryBytes;
constexpr size_t kMaxFingerprintBytes = 1024;
constexpr size_t kMaxConfigBytes = 1 << 16;

enum Section : uint32_t { kMeta = 1, kPositions = 2, kSide = 3, kLengths = 4, kPayload = 5 };

enum class CodecId : uint8_t {
  Fp16 = 1,
  Int8Token = 2,
  Int8Channel = 3,
  Int4Token = 4,
  Int4Channel = 5,
  Kivi2 = 6,
  Cachegen = 7,
  CachegenReleased = 8,
};
constexpr uint8_t kMaxCodecId = 8;
const char* codec_name(CodecId id);

constexpr uint8_t kFlagProfileTables = 1;  // cachegen: probability tables come from a profile

struct Shape {
  uint32_t layers = 0, tokens = 0, heads = 0, head_dim = 0;
  uint64_t channels() const { return uint64_t(heads) * head_dim; }
  uint64_t values() const { return uint64_t(layers) * 2 * tokens * channels(); }
};

struct Meta {
  CodecId codec = CodecId::Fp16;
  uint8_t level = 0;
  uint8_t flags = 0;
  Shape shape;
  std::string fingerprint;
  std::vector<uint8_t> config;
};

// What a codec hands the writer.
struct ContainerParts {
  Meta meta;
  const int32_t* positions = nullptr;  // shape.tokens entries
  std::vector<uint8_t> side;
  std::vector<uint32_t> lengths;       // one per stream, bytes
  uint32_t payload_check = 0;          // crc32.h payload_check over the streams
};

// Serialises header + META + POSITIONS + SIDE + LENGTHS; `payload_bytes` (the sum of lengths) bytes
// follow. The returned vector is sized for the whole container; the caller fills the payload at
// `payload_offset` (CPU: memcpy; CUDA: a device-to-host copy).
std::vector<uint8_t> write_container(const ContainerParts& parts, size_t* payload_offset);

// A validated view into container bytes (pointers into the caller's buffer).
struct Parsed {
  Meta meta;
  std::vector<int32_t> positions;      // one per token
  const uint8_t* side = nullptr;
  size_t side_bytes = 0;
  const uint8_t* lengths = nullptr;    // n_streams * 4 bytes
  size_t n_streams = 0;
  std::vector<uint64_t> offsets;       // n_streams + 1 prefix sums into the payload
  const uint8_t* payload = nullptr;
  size_t payload_bytes = 0;
  size_t payload_offset = 0;           // of the payload inside the container
  uint32_t payload_crc = 0;            // as stored (checked by verify_payload or on the device)
};

// Checks magic, version, directory, sizes and the CRCs of every section except the payload's
// (whose check needs per-stream CRCs: verify_payload on the host, or the CUDA decoder).
Parsed parse_container(const uint8_t* data, size_t size);
void verify_payload(const Parsed& p);

uint32_t read_u32(const uint8_t* p);
uint16_t read_u16(const uint8_t* p);
void put_u32(std::vector<uint8_t>& v, uint32_t x);
void put_u16(std::vector<uint8_t>& v, uint16_t x);

[[noreturn]] void format_error(const std::string& what);

}  // namespace kv::codec
