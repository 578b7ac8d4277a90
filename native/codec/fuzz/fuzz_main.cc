// kvlab_codec_fuzz: a randomised mutation harness for the KV container decoder. It encodes small
// random KV spans with every codec (cachegen with shipped tables and with a profile), then decodes
// mutated copies: bit flips, byte overwrites, truncations, extensions, splices of two containers and
// length-field attacks (u32 fields set to 0, 1, size +- k, 2^31, 2^32-1, random). Half the inputs
// get their checksums recomputed after mutation so the mutation reaches the codec-level checks behind
// them. Every input must end in a decoded KV or a kv::Error; anything else (another exception, an
// input slower than --hang-ms) is counted, and AddressSanitizer/UBSan builds catch memory errors.
//
//   kvlab_codec_fuzz [--inputs N] [--seed S] [--hang-ms MS] [--json]
// Exit status 0 when no unexpected exception and no hang was seen.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <random>
#include <string>
#include <vector>

#include "../../core/status.h"
#include "../../cpu/parallel.h"
#include "../codec.h"
#include "../crc32.h"

using namespace kv;
using namespace kv::codec;

namespace {

struct Seed {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> profile;  // table set when encoded with a profile
  uint64_t hash = 0;
};

std::vector<float> random_kv(std::mt19937_64& rng, const Shape& s) {
  std::normal_distribution<float> n(0.0f, 1.0f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(s.values()));
  for (auto& x : v) x = n(rng) * (u(rng) < 0.02f ? 20.0f : 1.0f);
  return v;
}

std::vector<Seed> make_seeds(std::mt19937_64& rng) {
  std::vector<Seed> seeds;
  for (int rep = 0; rep < 6; ++rep) {
    Shape s;
    s.layers = 1 + rng() % 3;
    s.tokens = 1 + rng() % 37;
    s.heads = 1 + rng() % 2;
    s.head_dim = 1 + rng() % 6;
    std::vector<float> kv = random_kv(rng, s);
    std::vector<int32_t> pos(s.tokens);
    for (uint32_t i = 0; i < s.tokens; ++i) pos[i] = static_cast<int32_t>(100 + i);
    KvInput in;
    in.data = kv.data();
    in.dtype = DType::F32;
    in.shape = s;
    in.positions = pos.data();
    in.fingerprint = "llama/fuzz/" + std::to_string(rep);
    for (uint8_t id = 1; id <= kMaxCodecId; ++id) {
      CodecId c = static_cast<CodecId>(id);
      if (c == CodecId::Cachegen) {
        CachegenOptions opt;
        opt.group = 1 + rng() % 12;
        opt.stream_tokens = opt.group * (1 + rng() % 4);
        for (uint32_t p = 0; p < s.layers * 2; ++p) {
          opt.m_anchor.push_back(static_cast<uint8_t>(1 + rng() % 31));
          opt.m_delta.push_back(static_cast<uint8_t>(1 + rng() % 31));
          opt.f_anchor.push_back(static_cast<float>(rng() % 4) * 0.01f);
          opt.f_delta.push_back(static_cast<float>(rng() % 4) * 0.05f);
        }
        seeds.push_back({encode_cachegen(0, in, opt), {}, 0});
        std::vector<uint64_t> counts;
        cachegen_count(in, opt, counts);
        Seed ps;
        ps.profile = cachegen_profile_codes(counts, s, opt.m_anchor, opt.m_delta);
        ps.hash = rng() | 1;
        opt.profile_tables = ps.profile.data();
        opt.profile_table_bytes = ps.profile.size();
        opt.profile_hash = ps.hash;
        ps.bytes = encode_cachegen(1, in, opt);
        seeds.push_back(std::move(ps));
      } else if (c == CodecId::CachegenReleased) {
        std::vector<uint8_t> bins(s.layers * 2, rep % 2 ? 16 : 32);
        seeds.push_back({encode_released(0, in, bins), {}, 0});
      } else {
        BaselineOptions bo;
        bo.kivi_group = 1 + rng() % 40;
        bo.kivi_residual = rng() % 2 ? 0 : 1 + rng() % 48;
        seeds.push_back({encode_baseline(c, 0, in, bo), {}, 0});
      }
    }
  }
  return seeds;
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
  for (int k = 0; k < 4; ++k) b[at + k] = static_cast<uint8_t>(v >> (8 * k));
}

// Best effort: recompute every checksum the directory lets us find, so mutated contents get past them.
void refresh_checksums(std::vector<uint8_t>& b) {
  if (b.size() < kHeaderBytes) return;
  uint64_t off[kNumSections], len[kNumSections];
  for (uint32_t i = 0; i < kNumSections; ++i) {
    const uint8_t* e = b.data() + kFixedHeaderBytes + i * kDirectoryEntryBytes;
    off[i] = read_u32(e + 4);
    len[i] = read_u32(e + 8);
    if (off[i] + len[i] > b.size()) return;
  }
  for (uint32_t i = 0; i + 1 < kNumSections; ++i)
    put32(b, kFixedHeaderBytes + i * kDirectoryEntryBytes + 12, crc32(b.data() + off[i], len[i]));
  if (len[3] % 4 == 0) {
    std::vector<uint32_t> crcs;
    uint64_t at = 0;
    bool fits = true;
    for (uint64_t i = 0; i < len[3] / 4 && fits; ++i) {
      uint32_t l = read_u32(b.data() + off[3] + 4 * i);
      if (at + l > len[4]) fits = false;
      else crcs.push_back(crc32(b.data() + off[4] + at, l));
      at += l;
    }
    if (fits) put32(b, kFixedHeaderBytes + 4 * kDirectoryEntryBytes + 12, payload_check(crcs.data(), crcs.size()));
  }
  uint32_t c = crc32(b.data(), 12);
  c = crc32(b.data() + kFixedHeaderBytes, kNumSections * kDirectoryEntryBytes, c);
  put32(b, 12, c);
}

std::vector<uint8_t> mutate(std::mt19937_64& rng, const std::vector<Seed>& seeds, const Seed& s, int* kind) {
  std::vector<uint8_t> b = s.bytes;
  *kind = static_cast<int>(rng() % 6);
  switch (*kind) {
    case 0: {  // bit flips
      int n = 1 + rng() % 8;
      for (int i = 0; i < n && !b.empty(); ++i) b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
      break;
    }
    case 1: {  // random bytes
      int n = 1 + rng() % 4;
      for (int i = 0; i < n && !b.empty(); ++i) b[rng() % b.size()] = static_cast<uint8_t>(rng());
      break;
    }
    case 2:  // truncation
      b.resize(rng() % (b.size() + 1));
      break;
    case 3: {  // extension
      size_t n = 1 + rng() % 64;
      for (size_t i = 0; i < n; ++i) b.push_back(static_cast<uint8_t>(rng()));
      if (rng() % 2 && b.size() >= 12) put32(b, 8, static_cast<uint32_t>(b.size()));
      break;
    }
    case 4: {  // splice with another container
      const Seed& o = seeds[rng() % seeds.size()];
      size_t cut = rng() % (b.size() + 1), from = rng() % (o.bytes.size() + 1);
      b.resize(cut);
      b.insert(b.end(), o.bytes.begin() + from, o.bytes.end());
      break;
    }
    default: {  // length-field attack on an aligned u32
      if (b.size() < 4) break;
      size_t at = (rng() % (b.size() / 4)) * 4;
      if (rng() % 2 && b.size() >= kHeaderBytes) at = 8 + 4 * (rng() % ((kHeaderBytes - 8) / 4));
      const uint32_t vals[] = {0u, 1u, 2u, 3u, 4u, static_cast<uint32_t>(b.size()), static_cast<uint32_t>(b.size() + 1),
                               static_cast<uint32_t>(b.size() - 1), 0x7fffffffu, 0x80000000u, 0xffffffffu,
                               0xfffffffcu, static_cast<uint32_t>(rng())};
      uint32_t v = vals[rng() % (sizeof vals / sizeof vals[0])];
      if (rng() % 3 == 0) v = read_u32(b.data() + at) + static_cast<uint32_t>(static_cast<int>(rng() % 9) - 4);
      put32(b, at, v);
      break;
    }
  }
  if (rng() % 2) refresh_checksums(b);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t inputs = 1000000, seed = 1;
  double hang_ms = 1000;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--inputs" && i + 1 < argc) inputs = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--hang-ms" && i + 1 < argc) hang_ms = std::atof(argv[++i]);
    else if (a == "--json") json = true;
    else {
      std::fprintf(stderr, "usage: kvlab_codec_fuzz [--inputs N] [--seed S] [--hang-ms MS] [--json]\n");
      return 2;
    }
  }
  cpu::set_num_threads(1);
  std::mt19937_64 rng(seed);
  std::vector<Seed> seeds = make_seeds(rng);
  // The seeds themselves must decode.
  for (const Seed& s : seeds) {
    Parsed p = parse_container(s.bytes.data(), s.bytes.size());
    std::vector<float> out(static_cast<size_t>(p.meta.shape.values()));
    DecodeProfile prof{s.profile.data(), s.profile.size(), s.hash};
    decode_host(p, out.data(), DType::F32, s.profile.empty() ? nullptr : &prof);
  }
  uint64_t decoded = 0, format = 0, other_typed = 0, oom = 0, unexpected = 0, hangs = 0, capped = 0;
  uint64_t by_kind[6] = {0};
  double max_ms = 0;
  std::vector<float> out;
  auto t_start = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < inputs; ++n) {
    const Seed& s = seeds[rng() % seeds.size()];
    int kind = 0;
    std::vector<uint8_t> b = mutate(rng, seeds, s, &kind);
    by_kind[kind]++;
    auto t0 = std::chrono::steady_clock::now();
    try {
      Parsed p = parse_container(b.data(), b.size());
      if (p.meta.shape.values() > (1u << 22)) {
        capped++;  // a valid-looking header for a huge span: the caller's allocation is the limit
      } else {
        out.assign(static_cast<size_t>(p.meta.shape.values()), 0.0f);
        DecodeProfile prof{s.profile.data(), s.profile.size(), s.hash};
        decode_host(p, out.data(), n % 3 ? DType::F32 : DType::F16, s.profile.empty() ? nullptr : &prof);
        for (float v : out)
          if (!std::isfinite(v) && n % 3) throw std::runtime_error(std::string("decoded a non-finite value, codec ") + codec_name(p.meta.codec));
        decoded++;
      }
    } catch (const Error& e) {
      if (e.code == Code::Format) format++;
      else other_typed++;
    } catch (const std::bad_alloc&) {
      oom++;
    } catch (const std::exception& e) {
      unexpected++;
      if (unexpected <= 5) std::fprintf(stderr, "unexpected exception on input %llu: %s\n", (unsigned long long)n, e.what());
    }
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (ms > max_ms) max_ms = ms;
    if (ms > hang_ms) hangs++;
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  if (json) {
    std::printf(
        "{\"inputs\":%llu,\"seeds\":%zu,\"decoded\":%llu,\"formatErrors\":%llu,\"otherTypedErrors\":%llu,"
        "\"badAlloc\":%llu,\"sizeCapped\":%llu,\"unexpected\":%llu,\"hangs\":%llu,\"maxMs\":%.3f,\"seconds\":%.2f,"
        "\"mutations\":{\"bitflip\":%llu,\"bytes\":%llu,\"truncate\":%llu,\"extend\":%llu,\"splice\":%llu,"
        "\"lengthField\":%llu}}\n",
        (unsigned long long)inputs, seeds.size(), (unsigned long long)decoded, (unsigned long long)format,
        (unsigned long long)other_typed, (unsigned long long)oom, (unsigned long long)capped,
        (unsigned long long)unexpected, (unsigned long long)hangs, max_ms, secs, (unsigned long long)by_kind[0],
        (unsigned long long)by_kind[1], (unsigned long long)by_kind[2], (unsigned long long)by_kind[3],
        (unsigned long long)by_kind[4], (unsigned long long)by_kind[5]);
  } else {
    std::printf("%llu inputs in %.1f s: %llu decoded, %llu format errors, %llu other typed errors, %llu unexpected, "
                "%llu hangs (max %.2f ms)\n",
                (unsigned long long)inputs, secs, (unsigned long long)decoded, (unsigned long long)format,
                (unsigned long long)other_typed, (unsigned long long)unexpected, (unsigned long long)hangs, max_ms);
  }
  return unexpected || hangs ? 1 : 0;
}
