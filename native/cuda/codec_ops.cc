// The CacheGen codec on a CUDA device (codec_ops.h): buffers, the kernel sequence of
// kernels/codec_cachegen.cu, and the container assembled on the host by native/codec's writer from
// what the kernels computed (steps, tables, stream lengths, the payload check), so the bytes equal
// the host codec's. Work runs on the device's legacy default stream; every status becomes kv::Error.
#include "codec_ops.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <memory>
#include <cstring>
#include <string>

#include "../../kernels/codec_cachegen.cuh"
#include "../codec/cachegen_math.h"
#include "../core/status.h"
#include "check.h"

namespace kv::cuda {
namespace {

using detail::check;

struct Dev {
  void* p = nullptr;
  explicit Dev(size_t bytes) { check(cudaMalloc(&p, std::max<size_t>(bytes, 1)), "cudaMalloc (cachegen)"); }
  ~Dev() { if (p) cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  template <typename T>
  T* as() const { return static_cast<T*>(p); }
};

void upload(void* dst, const void* src, size_t n) {
  if (n) check(cudaMemcpy(dst, src, n, cudaMemcpyHostToDevice), "cudaMemcpy (cachegen upload)");
}
void download(void* dst, const void* src, size_t n) {
  if (n) check(cudaMemcpy(dst, src, n, cudaMemcpyDeviceToHost), "cudaMemcpy (cachegen download)");
}
void launched(cudaError_t e, const char* what) { check(e, what); }

int dtype_id(DType t) {
  if (t == DType::F32) return 0;
  if (t == DType::F16) return 1;
  if (t == DType::BF16) return 2;
  fail(Code::DType, std::string("cachegen (CUDA): KV must be f32, f16 or bf16, got ") + dtype_name(t));
}

uint32_t max_level(const std::vector<uint8_t>& m) { return m.empty() ? 1u : *std::max_element(m.begin(), m.end()); }

// Everything one encode of one shape needs on the device.
struct EncodePlan {
  kvk::CgDims d{};
  size_t pc = 0, n_streams = 0, n_tables = 0, table_bytes = 0;
  uint32_t cap = 0;
  bool from_profile = false;
  std::vector<uint8_t> ma, md;
  bool forced = false;  // the planes' references come from the options (a profile), not the data
  Dev maxabs, maxabs_raw, step_a, step_d, fa, fd, m_a, m_d, raw, forced_raw, table_off, table_n, counts, codes, cum, bad,
      scratch, lengths, offsets, payload, check;
  size_t temp_bytes = 0;
  Dev* temp = nullptr;

  EncodePlan(const codec::KvInput& in, const codec::CachegenOptions& opt, kvk::CgDims dims, size_t tables,
             size_t streams, uint32_t cap_)
      : d(dims), pc(size_t(dims.planes) * dims.channels), n_streams(streams), n_tables(size_t(dims.planes) * (1 + dims.channels)),
        table_bytes(tables), cap(cap_), maxabs(pc * 4), maxabs_raw(pc * 4), step_a(pc * 2), step_d(pc * 2),
        fa(dims.planes * 4), fd(dims.planes * 4), m_a(dims.planes), m_d(dims.planes), raw(dims.planes),
        forced_raw(dims.planes), table_off(n_tables * 4), table_n(n_tables),
        counts(tables * 4), codes(tables), cum(n_tables * kvk::kCgCumStride * 4), bad(4), scratch(streams * cap_),
        lengths(streams * 4), offsets(streams * 4), payload(streams * cap_), check(8) {}
  ~EncodePlan() { delete temp; }
};

std::unique_ptr<EncodePlan> make_plan(int device, const codec::KvInput& in, const codec::CachegenOptions& opt) {
  detail::set_device(device);
  const codec::Shape& s = in.shape;
  if (s.layers < 1 || s.tokens < 1 || s.heads < 1 || s.head_dim < 1 || s.layers > 65535 || s.heads > 65535 ||
      s.head_dim > 65535 || s.tokens > (1u << 24))
    fail(Code::Shape, "cachegen (CUDA): implausible KV shape");
  const size_t planes = size_t(s.layers) * 2;
  kvk::CgDims d{};
  d.stream_tokens = codec::cachegen_check_options(opt, planes, s.tokens);
  d.planes = static_cast<uint32_t>(planes);
  d.tokens = s.tokens;
  d.channels = static_cast<uint32_t>(s.channels());
  d.group = opt.group;
  d.blocks = (d.tokens + d.stream_tokens - 1) / d.stream_tokens;
  std::vector<uint32_t> off;
  std::vector<uint8_t> sizes;
  codec::cachegen_tables(s, opt.m_anchor, opt.m_delta, off, sizes);
  const size_t table_bytes = codec::cachegen_table_bytes(s, opt.m_anchor, opt.m_delta);
  const size_t n_streams = planes * d.blocks * d.channels;
  const uint32_t cap = ((4 + 2 * d.stream_tokens) + 3) / 4 * 4;
  auto plan = std::make_unique<EncodePlan>(in, opt, d, table_bytes, n_streams, cap);
  plan->ma = opt.m_anchor;
  plan->md = opt.m_delta;
  upload(plan->fa.p, opt.f_anchor.data(), planes * 4);
  upload(plan->fd.p, opt.f_delta.data(), planes * 4);
  upload(plan->m_a.p, opt.m_anchor.data(), planes);
  upload(plan->m_d.p, opt.m_delta.data(), planes);
  if (!opt.raw.empty()) {  // its length is checked with the other options
    plan->forced = true;
    upload(plan->forced_raw.p, opt.raw.data(), planes);
  }
  upload(plan->table_off.p, off.data(), off.size() * 4);
  upload(plan->table_n.p, sizes.data(), sizes.size());
  plan->from_profile = opt.profile_tables != nullptr;
  if (plan->from_profile) {
    if (opt.profile_table_bytes != table_bytes)
      fail(Code::Arg, "cachegen: the profile's tables do not fit this KV shape and level");
    for (size_t i = 0; i < table_bytes; ++i)
      if (opt.profile_tables[i] == 0) fail(Code::Arg, "cachegen: the profile gives a symbol probability 0");
    upload(plan->codes.p, opt.profile_tables, table_bytes);
  }
  launched(kvk::cachegen_scan(nullptr, nullptr, static_cast<uint32_t>(n_streams), nullptr, &plan->temp_bytes, nullptr),
           "cub scan (size query)");
  plan->temp = new Dev(plan->temp_bytes);
  return plan;
}

// The device part of an encode: KV -> steps, tables, compacted streams, payload check.
void enqueue_encode(EncodePlan& pl, const void* kv, int dt) {
  const kvk::CgDims& d = pl.d;
  check(cudaMemsetAsync(pl.maxabs.p, 0, pl.pc * 4, nullptr), "cudaMemsetAsync");  // maxima are atomicMax'ed in
  launched(kvk::cachegen_anchor_maxabs(kv, dt, d, pl.maxabs.as<float>(), nullptr), "cachegen anchor max");
  launched(kvk::cachegen_plane_steps(pl.maxabs.as<float>(), pl.maxabs.as<float>(), d, pl.fa.as<float>(), pl.m_a.as<uint8_t>(),
                                     pl.step_a.as<uint16_t>(), nullptr), "cachegen anchor steps");
  check(cudaMemsetAsync(pl.maxabs.p, 0, pl.pc * 4, nullptr), "cudaMemsetAsync");
  check(cudaMemsetAsync(pl.maxabs_raw.p, 0, pl.pc * 4, nullptr), "cudaMemsetAsync");
  launched(kvk::cachegen_delta_maxabs(kv, dt, d, pl.step_a.as<uint16_t>(), pl.m_a.as<uint8_t>(), pl.m_d.as<uint8_t>(),
                                      pl.maxabs.as<float>(), pl.maxabs_raw.as<float>(), nullptr), "cachegen delta max");
  launched(kvk::cachegen_plane_reference(pl.maxabs.as<float>(), pl.maxabs_raw.as<float>(), d,
                                         pl.forced ? pl.forced_raw.as<uint8_t>() : nullptr, pl.raw.as<uint8_t>(), nullptr),
           "cachegen plane reference");
  launched(kvk::cachegen_plane_steps(pl.maxabs.as<float>(), pl.maxabs_raw.as<float>(), d, pl.fd.as<float>(), pl.m_d.as<uint8_t>(),
                                     pl.step_d.as<uint16_t>(), nullptr), "cachegen delta steps");
  if (!pl.from_profile) {
    check(cudaMemsetAsync(pl.counts.p, 0, pl.table_bytes * 4, nullptr), "cudaMemsetAsync");
    launched(kvk::cachegen_histogram(kv, dt, d, pl.step_a.as<uint16_t>(), pl.step_d.as<uint16_t>(), pl.m_a.as<uint8_t>(),
                                     pl.m_d.as<uint8_t>(), pl.raw.as<uint8_t>(), max_level(pl.md), pl.table_off.as<uint32_t>(),
                                     pl.counts.as<uint32_t>(),
                                     nullptr),
             "cachegen histogram");
    launched(kvk::cachegen_codes(pl.counts.as<uint32_t>(), pl.table_off.as<uint32_t>(), pl.table_n.as<uint8_t>(),
                                 static_cast<uint32_t>(pl.n_tables), pl.codes.as<uint8_t>(), nullptr), "cachegen codes");
  }
  check(cudaMemsetAsync(pl.bad.p, 0, 4, nullptr), "cudaMemsetAsync");
  launched(kvk::cachegen_cum_tables(pl.codes.as<uint8_t>(), pl.table_off.as<uint32_t>(), pl.table_n.as<uint8_t>(),
                                    static_cast<uint32_t>(pl.n_tables), d, pl.raw.as<uint8_t>(), pl.cum.as<uint32_t>(),
                                    pl.bad.as<uint32_t>(),
                                    nullptr), "cachegen tables");
  launched(kvk::cachegen_encode_streams(kv, dt, d, pl.step_a.as<uint16_t>(), pl.step_d.as<uint16_t>(),
                                        pl.m_a.as<uint8_t>(), pl.m_d.as<uint8_t>(), pl.raw.as<uint8_t>(), max_level(pl.md),
                                        pl.cum.as<uint32_t>(),
                                        pl.scratch.as<uint8_t>(), pl.cap, pl.lengths.as<uint32_t>(), nullptr),
           "cachegen encode");
  launched(kvk::cachegen_scan(pl.lengths.as<uint32_t>(), pl.offsets.as<uint32_t>(), static_cast<uint32_t>(pl.n_streams),
                              pl.temp->p, &pl.temp_bytes, nullptr), "cub scan");
  check(cudaMemsetAsync(pl.check.p, 0, 4, nullptr), "cudaMemsetAsync");
  launched(kvk::cachegen_compact(pl.scratch.as<uint8_t>(), pl.cap, pl.lengths.as<uint32_t>(), pl.offsets.as<uint32_t>(),
                                 static_cast<uint32_t>(pl.n_streams), pl.payload.as<uint8_t>(), pl.check.as<uint32_t>(),
                                 nullptr), "cachegen compact");
}

// Host part: the container from what the kernels left on the device.
std::vector<uint8_t> finish_encode(EncodePlan& pl, uint8_t level, const codec::KvInput& in,
                                   const codec::CachegenOptions& opt) {
  uint32_t bad = 0, chk = 0;
  download(&bad, pl.bad.p, 4);
  if (bad) fail(Code::Arg, "cachegen (CUDA): an empty probability table");
  download(&chk, pl.check.p, 4);
  codec::ContainerParts parts;
  parts.meta.codec = codec::CodecId::Cachegen;
  parts.meta.level = level;
  parts.meta.flags = pl.from_profile ? codec::kFlagProfileTables : 0;
  parts.meta.shape = in.shape;
  parts.meta.fingerprint = in.fingerprint;
  std::vector<uint8_t>& cfg = parts.meta.config;
  cfg.push_back(static_cast<uint8_t>(pl.d.group));
  cfg.push_back(static_cast<uint8_t>(codec::kProbBits));
  codec::put_u16(cfg, static_cast<uint16_t>(pl.d.stream_tokens));
  uint64_t hash = pl.from_profile ? opt.profile_hash : 0;
  for (int k = 0; k < 8; ++k) cfg.push_back(static_cast<uint8_t>(hash >> (8 * k)));
  std::vector<uint8_t> raw(pl.d.planes);
  download(raw.data(), pl.raw.p, pl.d.planes);
  for (size_t p = 0; p < pl.d.planes; ++p) {
    cfg.push_back(pl.ma[p]);
    cfg.push_back(static_cast<uint8_t>(pl.md[p] | (raw[p] ? codec::kRawFlag : 0)));
  }
  parts.positions = in.positions;
  parts.side.resize(pl.pc * 4 + (pl.from_profile ? 0 : pl.table_bytes));
  download(parts.side.data(), pl.step_a.p, pl.pc * 2);
  download(parts.side.data() + pl.pc * 2, pl.step_d.p, pl.pc * 2);
  if (!pl.from_profile) download(parts.side.data() + pl.pc * 4, pl.codes.p, pl.table_bytes);
  parts.lengths.resize(pl.n_streams);
  download(parts.lengths.data(), pl.lengths.p, pl.n_streams * 4);
  parts.payload_check = chk;
  size_t off = 0;
  std::vector<uint8_t> out = codec::write_container(parts, &off);
  download(out.data() + off, pl.payload.p, out.size() - off);
  return out;
}

// Everything one decode needs on the device; the container bytes are uploaded once.
struct DecodePlan {
  kvk::CgDims d{};
  codec::CachegenConfig cc;
  size_t n_tables = 0;
  uint32_t payload_crc = 0;
  Dev bytes, offsets, m_a, m_d, raw, table_off, table_n, profile, cum, flags;
  const uint8_t* codes = nullptr;
  const uint8_t* steps = nullptr;
  const uint8_t* payload = nullptr;

  DecodePlan(const codec::Parsed& p, const codec::CachegenConfig& c, size_t size, size_t tables_profile)
      : cc(c), n_tables(size_t(p.meta.shape.layers) * 2 * (1 + p.meta.shape.channels())), bytes(size),
        offsets((p.n_streams + 1) * 4), m_a(p.meta.shape.layers * 2), m_d(p.meta.shape.layers * 2),
        raw(p.meta.shape.layers * 2), table_off(n_tables * 4),
        table_n(n_tables), profile(tables_profile), cum(n_tables * kvk::kCgCumStride * 4), flags(12) {}
};

std::unique_ptr<DecodePlan> make_decode_plan(int device, const uint8_t* bytes, size_t size, const codec::Parsed& p,
                                             const codec::DecodeProfile* profile) {
  detail::set_device(device);
  codec::CachegenConfig cc = codec::cachegen_config(p, profile);
  const bool from_profile = p.meta.flags & codec::kFlagProfileTables;
  auto pl = std::make_unique<DecodePlan>(p, cc, size, from_profile ? cc.table_bytes : 0);
  pl->d.planes = p.meta.shape.layers * 2;
  pl->d.tokens = p.meta.shape.tokens;
  pl->d.channels = static_cast<uint32_t>(p.meta.shape.channels());
  pl->d.group = cc.group;
  pl->d.stream_tokens = cc.stream_tokens;
  pl->d.blocks = cc.blocks;
  pl->payload_crc = p.payload_crc;
  upload(pl->bytes.p, bytes, size);
  std::vector<uint32_t> off32(p.n_streams + 1);
  for (size_t i = 0; i <= p.n_streams; ++i) off32[i] = static_cast<uint32_t>(p.offsets[i]);
  upload(pl->offsets.p, off32.data(), off32.size() * 4);
  upload(pl->m_a.p, cc.m_anchor.data(), cc.m_anchor.size());
  upload(pl->m_d.p, cc.m_delta.data(), cc.m_delta.size());
  upload(pl->raw.p, cc.raw.data(), cc.raw.size());
  std::vector<uint32_t> toff;
  std::vector<uint8_t> tn;
  codec::cachegen_tables(p.meta.shape, cc.m_anchor, cc.m_delta, toff, tn);
  upload(pl->table_off.p, toff.data(), toff.size() * 4);
  upload(pl->table_n.p, tn.data(), tn.size());
  if (from_profile) {
    upload(pl->profile.p, cc.tables, cc.table_bytes);
    pl->codes = pl->profile.as<uint8_t>();
  } else {
    pl->codes = pl->bytes.as<uint8_t>() + (cc.tables - bytes);
  }
  pl->steps = pl->bytes.as<uint8_t>() + (cc.scales_a - bytes);
  pl->payload = pl->bytes.as<uint8_t>() + p.payload_offset;
  return pl;
}

void enqueue_decode(DecodePlan& pl, void* out, int dt) {
  check(cudaMemsetAsync(pl.flags.p, 0, 12, nullptr), "cudaMemsetAsync");
  uint32_t* f = pl.flags.as<uint32_t>();  // [bad tables, payload check, bad streams]
  launched(kvk::cachegen_cum_tables(pl.codes, pl.table_off.as<uint32_t>(), pl.table_n.as<uint8_t>(),
                                    static_cast<uint32_t>(pl.n_tables), pl.d, pl.raw.as<uint8_t>(), pl.cum.as<uint32_t>(), f,
                                    nullptr),
           "cachegen tables");
  launched(kvk::cachegen_decode_streams(pl.payload, pl.offsets.as<uint32_t>(), pl.d, pl.steps, pl.m_a.as<uint8_t>(),
                                        pl.m_d.as<uint8_t>(), pl.raw.as<uint8_t>(), max_level(pl.cc.m_delta),
                                        pl.cum.as<uint32_t>(), out, dt, f + 1, f + 2, nullptr),
           "cachegen decode");
}

void finish_decode(DecodePlan& pl) {
  uint32_t f[3];
  download(f, pl.flags.p, 12);
  if (f[0]) codec::format_error("empty probability table");
  if (f[1] != pl.payload_crc) codec::format_error("payload checksum mismatch");
  if (f[2]) codec::format_error(std::to_string(f[2]) + " rANS streams do not decode cleanly");
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

std::vector<uint8_t> cachegen_encode(int device, uint8_t level, const codec::KvInput& in,
                                     const codec::CachegenOptions& opt) {
  auto pl = make_plan(device, in, opt);
  enqueue_encode(*pl, in.data, dtype_id(in.dtype));
  return finish_encode(*pl, level, in, opt);
}

void cachegen_decode(int device, const uint8_t* bytes, size_t size, const codec::Parsed& p,
                     const codec::DecodeProfile* profile, void* out, DType out_type) {
  int dt = dtype_id(out_type);
  auto pl = make_decode_plan(device, bytes, size, p, profile);
  enqueue_decode(*pl, out, dt);
  finish_decode(*pl);
}

CodecBench cachegen_bench(int device, uint8_t level, const codec::KvInput& in, const codec::CachegenOptions& opt,
                          void* out, DType out_type, int reps) {
  if (reps < 1 || reps > 1000) fail(Code::Arg, "cachegen bench: reps must be in 1..1000");
  CodecBench r;
  auto pl = make_plan(device, in, opt);
  const int dt = dtype_id(in.dtype);
  cudaEvent_t a, b;
  check(cudaEventCreate(&a), "cudaEventCreate");
  check(cudaEventCreate(&b), "cudaEventCreate");
  struct Events {
    cudaEvent_t a, b;
    ~Events() { cudaEventDestroy(a); cudaEventDestroy(b); }
  } ev{a, b};
  enqueue_encode(*pl, in.data, dt);  // warm-up
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a, nullptr), "cudaEventRecord");
    enqueue_encode(*pl, in.data, dt);
    check(cudaEventRecord(b, nullptr), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    r.encode_ms.push_back(ms);
  }
  r.container = finish_encode(*pl, level, in, opt);
  codec::Parsed p = codec::parse_container(r.container.data(), r.container.size());
  codec::DecodeProfile prof{opt.profile_tables, opt.profile_table_bytes, opt.profile_hash};
  auto dp = make_decode_plan(device, r.container.data(), r.container.size(), p, opt.profile_tables ? &prof : nullptr);
  const int odt = dtype_id(out_type);
  enqueue_decode(*dp, out, odt);  // warm-up
  finish_decode(*dp);
  for (int i = 0; i < reps; ++i) {
    check(cudaEventRecord(a, nullptr), "cudaEventRecord");
    enqueue_decode(*dp, out, odt);
    check(cudaEventRecord(b, nullptr), "cudaEventRecord");
    check(cudaEventSynchronize(b), "cudaEventSynchronize");
    float ms = 0;
    check(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
    r.decode_ms.push_back(ms);
  }
  finish_decode(*dp);
  (void)median;
  return r;
}

}  // namespace kv::cuda
