// CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320, init and final xor 0xFFFFFFFF), the checksum
// of every container section. Table-driven; the table is built at compile time so device code can
// copy it to shared memory.
#pragma once
#include <cstddef>
#include <cstdint>

#include "hd.h"

namespace kv::codec {

struct Crc32Table {
  uint32_t t[256];
};

constexpr Crc32Table make_crc32_table() {
  Crc32Table tab{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    tab.t[i] = c;
  }
  return tab;
}

// Continues a CRC over bytes; start with crc = 0, the result is the CRC of everything fed so far.
KV_HD inline uint32_t crc32_update(const uint32_t* table, uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xffu] ^ (c >> 8);
  return ~c;
}

// Host helpers (a static table).
uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0);

// The payload checksum: sum over streams s of crc32(stream s) * (2s + 1), mod 2^32. Every stream's
// CRC is computed on its own (one GPU thread per stream) and the weighted sum is an order-free
// integer reduction, so the GPU gets it without a serial pass. A change inside one stream changes
// its CRC, and multiplying by an odd number is a bijection mod 2^32, so the check changes too.
KV_HD inline uint32_t payload_check_term(uint32_t crc, uint64_t stream) {
  return crc * static_cast<uint32_t>(2 * stream + 1);
}
uint32_t payload_check(const uint32_t* crcs, size_t n);

}  // namespace kv::codec
