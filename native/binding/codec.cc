// The KV codecs (native/codec) as seen from JavaScript: encode a KV storage into a container, inspect
// a container's header, decode into a storage (host, or a CUDA device), and the profile helpers.
// Containers cross the boundary as Uint8Arrays; every byte is validated in native/codec before use.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "../codec/codec.h"
#include "../codec/freq.h"
#include "../codec/rans.h"
#include "../cuda/codec_ops.h"
#include "../cuda/runtime.h"
#include "args.h"
#include "errors.h"
#include "exports.h"

namespace kv::binding {
namespace {

std::string where(const char* fn, const char* name) { return std::string(fn) + ": argument '" + name + "'"; }

Napi::Uint8Array arg_bytes(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  Napi::Value v = info[i];
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(Code::Arg, where(fn, name) + ": expected a Uint8Array");
  return v.As<Napi::Uint8Array>();
}

std::vector<uint8_t> bytes_or_empty(const Napi::Object& o, const char* key, const char* fn) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    fail(Code::Arg, std::string(fn) + ": option '" + key + "' must be a Uint8Array");
  auto a = v.As<Napi::Uint8Array>();
  return std::vector<uint8_t>(a.Data(), a.Data() + a.ElementLength());
}

uint32_t u32_or(const Napi::Object& o, const char* key, uint32_t dflt, const char* fn) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsNumber()) fail(Code::Arg, std::string(fn) + ": option '" + key + "' must be a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 4294967295.0 || d != static_cast<double>(static_cast<uint32_t>(d)))
    fail(Code::Arg, std::string(fn) + ": option '" + key + "' must be an integer in 0..2^32-1");
  return static_cast<uint32_t>(d);
}

std::vector<float> floats_or_empty(const Napi::Object& o, const char* key, const char* fn) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    fail(Code::Arg, std::string(fn) + ": option '" + key + "' must be a Float32Array");
  auto a = v.As<Napi::Float32Array>();
  return std::vector<float>(a.Data(), a.Data() + a.ElementLength());
}

codec::CachegenOptions cachegen_options(const Napi::Object& o, const char* fn);

uint64_t parse_hash(const std::string& hex, const char* fn) {
  if (hex.size() != 16) fail(Code::Arg, std::string(fn) + ": a profile hash is 16 hex digits");
  uint64_t h = 0;
  for (char ch : hex) {
    int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
    if (d < 0) fail(Code::Arg, std::string(fn) + ": a profile hash is 16 lowercase hex digits");
    h = (h << 4) | uint64_t(d);
  }
  return h;
}

std::string hash_hex(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

// dims = [layers, tokens, heads, headDim]
codec::Shape arg_shape(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  Napi::Value v = info[i];
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 4) fail(Code::Arg, where(fn, "dims") + ": expected 4 numbers");
  auto a = v.As<Napi::Array>();
  uint32_t d[4];
  for (uint32_t k = 0; k < 4; ++k) {
    Napi::Value e = a.Get(k);
    double x = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
    if (!(x >= 1) || x > 16777216 || x != static_cast<double>(static_cast<uint32_t>(x)))
      fail(Code::Arg, where(fn, "dims") + ": expected integers in 1..2^24");
    d[k] = static_cast<uint32_t>(x);
  }
  codec::Shape s;
  s.layers = d[0];
  s.tokens = d[1];
  s.heads = d[2];
  s.head_dim = d[3];
  return s;
}

codec::CachegenOptions cachegen_options(const Napi::Object& o, const char* fn) {
  codec::CachegenOptions opt;
  opt.group = u32_or(o, "group", 10, fn);
  opt.stream_tokens = u32_or(o, "streamTokens", 0, fn);
  opt.m_anchor = bytes_or_empty(o, "mAnchor", fn);
  opt.m_delta = bytes_or_empty(o, "mDelta", fn);
  opt.f_anchor = floats_or_empty(o, "fAnchor", fn);
  opt.f_delta = floats_or_empty(o, "fDelta", fn);
  opt.raw = bytes_or_empty(o, "raw", fn);  // per plane 0/1; absent: each plane decides
  for (uint8_t r : opt.raw)
    if (r > 1) fail(Code::Arg, where(fn, "raw") + ": expected 0 or 1 per (layer, K|V)");
  return opt;
}

Napi::Value to_buffer(Napi::Env env, std::vector<uint8_t>&& bytes) {
  auto* owned = new std::vector<uint8_t>(std::move(bytes));
  auto buf = Napi::Buffer<uint8_t>::New(env, owned->data(), owned->size(),
                                        [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, owned);
  return Napi::Uint8Array::New(env, buf.Length(), buf.ArrayBuffer(), buf.ByteOffset());
}

codec::CodecId arg_codec(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  int id = arg_int(info, i, fn, "codec");
  if (id < 1 || id > codec::kMaxCodecId) fail(Code::Arg, where(fn, "codec") + ": unknown codec id");
  return static_cast<codec::CodecId>(id);
}

// The KV span arguments encode and the GPU bench share, at indices i..i+5:
// (kv, dtype, dims, positions: Int32Array, fingerprint: string, options: object).
struct KvSpanArgs {
  std::shared_ptr<Storage> kv;
  codec::KvInput in;
  Napi::Object options;
};

KvSpanArgs arg_kv_span(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  KvSpanArgs a;
  a.kv = arg_storage(info, i, fn, "kv");
  DType dt = arg_dtype(info, i + 1, fn, "dtype");
  codec::Shape shape = arg_shape(info, i + 2, fn);
  if (!info[i + 3].IsTypedArray() || info[i + 3].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    fail(Code::Arg, where(fn, "positions") + ": expected an Int32Array");
  auto pos = info[i + 3].As<Napi::Int32Array>();
  if (pos.ElementLength() != shape.tokens) fail(Code::Shape, where(fn, "positions") + ": one per token expected");
  if (!info[i + 4].IsString()) fail(Code::Arg, where(fn, "fingerprint") + ": expected a string");
  if (!info[i + 5].IsObject()) fail(Code::Arg, where(fn, "options") + ": expected an object");
  if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16)
    fail(Code::DType, std::string(fn) + ": KV must be f32, f16 or bf16, got " + dtype_name(dt));
  check_range(*a.kv, 0, static_cast<size_t>(shape.values()) * dtype_size(dt), fn, "kv");
  a.in.data = a.kv->data;
  a.in.dtype = dt;
  a.in.shape = shape;
  a.in.positions = pos.Data();
  a.in.fingerprint = info[i + 4].As<Napi::String>().Utf8Value();
  a.options = info[i + 5].As<Napi::Object>();
  return a;
}

// A per-model profile's tables from options {profileTables, profileHash} into `opt`; `tables` holds
// the bytes for as long as `opt` points at them.
void apply_profile(const Napi::Object& o, const char* fn, std::vector<uint8_t>& tables, codec::CachegenOptions& opt) {
  tables = bytes_or_empty(o, "profileTables", fn);
  if (tables.empty()) return;
  Napi::Value h = o.Get("profileHash");
  if (!h.IsString()) fail(Code::Arg, std::string(fn) + ": profileTables needs profileHash");
  opt.profile_tables = tables.data();
  opt.profile_table_bytes = tables.size();
  opt.profile_hash = parse_hash(h.As<Napi::String>().Utf8Value(), fn);
}

// codecEncode(codec, level, kv, dtype, dims, positions, fingerprint, options) -> Uint8Array
// options: { kiviGroup, kiviResidual, group, streamTokens, mAnchor, mDelta, bins, profileTables, profileHash }
Napi::Value codec_encode(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "codecEncode";
    codec::CodecId id = arg_codec(info, 0, fn);
    int level = arg_int(info, 1, fn, "level");
    if (level < 0 || level > 255) fail(Code::Arg, where(fn, "level") + ": expected 0..255");
    KvSpanArgs span = arg_kv_span(info, 2, fn);
    const auto& kv = span.kv;
    const codec::KvInput& in = span.in;
    Napi::Object o = span.options;
    std::vector<uint8_t> out;
    if (id == codec::CodecId::Cachegen) {
      codec::CachegenOptions opt = cachegen_options(o, fn);
      std::vector<uint8_t> profile_tables;
      apply_profile(o, fn, profile_tables, opt);
      if (kv->device != kHost) out = cuda::cachegen_encode(kv->device, static_cast<uint8_t>(level), in, opt);
      else out = codec::encode_cachegen(static_cast<uint8_t>(level), in, opt);
    } else {
      if (kv->device != kHost) fail(Code::Device, std::string(fn) + ": this codec encodes host KV only");
      if (id == codec::CodecId::CachegenReleased) {
        out = codec::encode_released(static_cast<uint8_t>(level), in, bytes_or_empty(o, "bins", fn));
      } else {
        codec::BaselineOptions bo;
        bo.kivi_group = u32_or(o, "kiviGroup", 32, fn);
        bo.kivi_residual = u32_or(o, "kiviResidual", 0, fn);
        out = codec::encode_baseline(id, static_cast<uint8_t>(level), in, bo);
      }
    }
    return to_buffer(info.Env(), std::move(out));
  });
}

// codecInspect(bytes) -> header fields (validates everything but the payload checksum)
Napi::Value codec_inspect(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto b = arg_bytes(info, 0, "codecInspect", "bytes");
    codec::Parsed p = codec::parse_container(b.Data(), b.ElementLength());
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    r.Set("codec", Napi::Number::New(env, static_cast<int>(p.meta.codec)));
    r.Set("codecName", Napi::String::New(env, codec::codec_name(p.meta.codec)));
    r.Set("level", Napi::Number::New(env, p.meta.level));
    r.Set("flags", Napi::Number::New(env, p.meta.flags));
    r.Set("layers", Napi::Number::New(env, p.meta.shape.layers));
    r.Set("tokens", Napi::Number::New(env, p.meta.shape.tokens));
    r.Set("heads", Napi::Number::New(env, p.meta.shape.heads));
    r.Set("headDim", Napi::Number::New(env, p.meta.shape.head_dim));
    r.Set("fingerprint", Napi::String::New(env, p.meta.fingerprint));
    auto pos = Napi::Int32Array::New(env, p.meta.shape.tokens);
    std::memcpy(pos.Data(), p.positions.data(), size_t(p.meta.shape.tokens) * 4);
    r.Set("positions", pos);
    r.Set("streams", Napi::Number::New(env, static_cast<double>(p.n_streams)));
    r.Set("sideBytes", Napi::Number::New(env, static_cast<double>(p.side_bytes)));
    r.Set("payloadBytes", Napi::Number::New(env, static_cast<double>(p.payload_bytes)));
    std::string hash;
    if (p.meta.codec == codec::CodecId::Cachegen && (p.meta.flags & codec::kFlagProfileTables) &&
        p.meta.config.size() >= 12) {
      uint64_t h = 0;
      for (int k = 0; k < 8; ++k) h |= uint64_t(p.meta.config[4 + k]) << (8 * k);
      hash = hash_hex(h);
    }
    r.Set("profileHash", Napi::String::New(env, hash));
    return r;
  });
}

// codecDecode(bytes, out, outDtype, profileTables | null, profileHash | null)
Napi::Value codec_decode(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "codecDecode";
    auto b = arg_bytes(info, 0, fn, "bytes");
    auto out = arg_storage(info, 1, fn, "out");
    DType dt = arg_dtype(info, 2, fn, "outDtype");
    codec::Parsed p = codec::parse_container(b.Data(), b.ElementLength());
    if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16)
      fail(Code::DType, std::string(fn) + ": decoded KV must be f32, f16 or bf16, got " + dtype_name(dt));
    const size_t need = static_cast<size_t>(p.meta.shape.values()) * dtype_size(dt);
    check_range(*out, 0, need, fn, "out");
    std::vector<uint8_t> tables;
    codec::DecodeProfile prof;
    bool has_profile = false;
    if (!info[3].IsUndefined() && !info[3].IsNull()) {
      auto t = arg_bytes(info, 3, fn, "profileTables");
      tables.assign(t.Data(), t.Data() + t.ElementLength());
      if (!info[4].IsString()) fail(Code::Arg, where(fn, "profileHash") + ": expected a string");
      prof.tables = tables.data();
      prof.bytes = tables.size();
      prof.hash = parse_hash(info[4].As<Napi::String>().Utf8Value(), fn);
      has_profile = true;
    }
    const codec::DecodeProfile* pp = has_profile ? &prof : nullptr;
    if (out->device == kHost) {
      codec::decode_host(p, out->data, dt, pp);
    } else if (p.meta.codec == codec::CodecId::Cachegen) {
      cuda::cachegen_decode(out->device, b.Data(), b.ElementLength(), p, pp, out->data, dt);
    } else {
      // Baselines decode on the host, then one copy to the device.
      std::vector<uint8_t> host(need);
      codec::decode_host(p, host.data(), dt, pp);
      cuda::memcpy(out->data, out->device, host.data(), kHost, need, nullptr, false);
    }
    return info.Env().Undefined();
  });
}

// The sample KV of a profile pass (arguments 0-3: kv on the host, dtype, dims, options), checked.
struct ProfileSample {
  codec::KvInput in;
  codec::CachegenOptions opt;
  std::vector<int32_t> pos;
  std::shared_ptr<Storage> kv;
};

ProfileSample profile_sample(const Napi::CallbackInfo& info, const char* fn) {
  ProfileSample p;
  p.kv = arg_storage(info, 0, fn, "kv");
  DType dt = arg_dtype(info, 1, fn, "dtype");
  codec::Shape shape = arg_shape(info, 2, fn);
  if (!info[3].IsObject()) fail(Code::Arg, where(fn, "options") + ": expected an object");
  if (p.kv->device != kHost) fail(Code::Device, std::string(fn) + ": profiles are built from host KV");
  if (dt != DType::F32 && dt != DType::F16 && dt != DType::BF16)
    fail(Code::DType, std::string(fn) + ": KV must be f32, f16 or bf16");
  check_range(*p.kv, 0, static_cast<size_t>(shape.values()) * dtype_size(dt), fn, "kv");
  p.opt = cachegen_options(info[3].As<Napi::Object>(), fn);
  p.pos.assign(shape.tokens, 0);
  p.in.data = p.kv->data;
  p.in.dtype = dt;
  p.in.shape = shape;
  p.in.positions = p.pos.data();
  return p;
}

// Argument i: a Float64Array a pass adds into (empty when null or undefined).
std::vector<double> running_sums(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  if (info[i].IsUndefined() || info[i].IsNull()) return {};
  if (!info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    fail(Code::Arg, where(fn, name) + ": expected a Float64Array");
  auto c = info[i].As<Napi::Float64Array>();
  return std::vector<double>(c.Data(), c.Data() + c.ElementLength());
}

template <class T>
Napi::Float64Array to_float64_array(Napi::Env env, const std::vector<T>& v) {
  auto r = Napi::Float64Array::New(env, v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = static_cast<double>(v[i]);
  return r;
}

// cachegenCount(kv, dtype, dims, options, counts: Float64Array | null) -> Float64Array (counts added)
Napi::Value cachegen_count(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "cachegenCount";
    ProfileSample p = profile_sample(info, fn);
    std::vector<double> prev = running_sums(info, 4, fn, "counts");
    std::vector<uint64_t> counts(prev.size());
    for (size_t i = 0; i < prev.size(); ++i) counts[i] = static_cast<uint64_t>(prev[i]);
    codec::cachegen_count(p.in, p.opt, counts);
    return to_float64_array(info.Env(), counts);
  });
}

// cachegenReferenceSums(kv, dtype, dims, options, sums: Float64Array | null) -> Float64Array
// (per plane [delta, raw] sums of channel maxima added; codec.h cachegen_reference_sums)
Napi::Value cachegen_reference_sums(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "cachegenReferenceSums";
    ProfileSample p = profile_sample(info, fn);
    std::vector<double> sums = running_sums(info, 4, fn, "sums");
    codec::cachegen_reference_sums(p.in, p.opt, sums);
    return to_float64_array(info.Env(), sums);
  });
}

// cachegenProfileCodes(counts: Float64Array, dims, mAnchor, mDelta) -> Uint8Array (the table set)
Napi::Value cachegen_profile_codes(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "cachegenProfileCodes";
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      fail(Code::Arg, where(fn, "counts") + ": expected a Float64Array");
    auto c = info[0].As<Napi::Float64Array>();
    std::vector<uint64_t> counts(c.ElementLength());
    for (size_t i = 0; i < counts.size(); ++i) {
      double d = c[i];
      if (!(d >= 0) || d > 9007199254740991.0) fail(Code::Arg, where(fn, "counts") + ": expected counts >= 0");
      counts[i] = static_cast<uint64_t>(d);
    }
    codec::Shape shape = arg_shape(info, 1, fn);
    std::vector<uint8_t> ma(arg_bytes(info, 2, fn, "mAnchor").Data(), arg_bytes(info, 2, fn, "mAnchor").Data() +
                                                                         arg_bytes(info, 2, fn, "mAnchor").ElementLength());
    std::vector<uint8_t> md(arg_bytes(info, 3, fn, "mDelta").Data(), arg_bytes(info, 3, fn, "mDelta").Data() +
                                                                        arg_bytes(info, 3, fn, "mDelta").ElementLength());
    if (ma.size() != size_t(shape.layers) * 2 || md.size() != ma.size())
      fail(Code::Arg, std::string(fn) + ": one level per (layer, K|V) expected");
    for (size_t i = 0; i < ma.size(); ++i)
      if (ma[i] < 1 || ma[i] > 31 || md[i] < 1 || md[i] > 31) fail(Code::Arg, std::string(fn) + ": levels in 1..31");
    return to_buffer(info.Env(), codec::cachegen_profile_codes(counts, shape, ma, md));
  });
}

// codecBenchCuda(kv, dtype, dims, positions, fingerprint, options, out, outDtype, reps)
//   -> { encodeMs: number[], decodeMs: number[], container: Uint8Array }   (cachegen, KV and out on one GPU)
Napi::Value codec_bench_cuda(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "codecBenchCuda";
    KvSpanArgs span = arg_kv_span(info, 0, fn);
    const auto& kv = span.kv;
    const codec::KvInput& in = span.in;
    Napi::Object o = span.options;
    auto out = arg_storage(info, 6, fn, "out");
    DType odt = arg_dtype(info, 7, fn, "outDtype");
    int reps = arg_int(info, 8, fn, "reps");
    if (kv->device == kHost || out->device != kv->device) fail(Code::Device, std::string(fn) + ": KV and out must be on one GPU");
    check_range(*out, 0, static_cast<size_t>(in.shape.values()) * dtype_size(odt), fn, "out");
    codec::CachegenOptions opt = cachegen_options(o, fn);
    std::vector<uint8_t> profile_tables;
    apply_profile(o, fn, profile_tables, opt);
    uint32_t level = u32_or(o, "level", 0, fn);
    if (level > 255) fail(Code::Arg, std::string(fn) + ": level index out of range");
    cuda::CodecBench b = cuda::cachegen_bench(kv->device, static_cast<uint8_t>(level), in, opt, out->data, odt, reps);
    Napi::Env env = info.Env();
    Napi::Object r = Napi::Object::New(env);
    auto arr = [&](const std::vector<double>& v) {
      Napi::Array a = Napi::Array::New(env, v.size());
      for (size_t i = 0; i < v.size(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, v[i]));
      return a;
    };
    r.Set("encodeMs", arr(b.encode_ms));
    r.Set("decodeMs", arr(b.decode_ms));
    r.Set("container", to_buffer(env, std::move(b.container)));
    return r;
  });
}

// ransRoundTrip(symbols: Uint8Array, freqs: Uint32Array, bits) -> { bytes, decoded, clean }: one rANS
// stream through the codec's coder (for the lossless round-trip tests). freqs sum to 2^bits.
Napi::Value rans_round_trip(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "ransRoundTrip";
    auto sym = arg_bytes(info, 0, fn, "symbols");
    if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array)
      fail(Code::Arg, where(fn, "freqs") + ": expected a Uint32Array");
    auto fr = info[1].As<Napi::Uint32Array>();
    int bits = arg_int(info, 2, fn, "bits");
    if (bits < 1 || bits > 16) fail(Code::Arg, where(fn, "bits") + ": expected 1..16");
    const size_t n = fr.ElementLength();
    if (n < 1 || n > 256) fail(Code::Arg, where(fn, "freqs") + ": 1..256 symbols");
    std::vector<uint32_t> cum(n + 1, 0);
    for (size_t i = 0; i < n; ++i) cum[i + 1] = cum[i] + fr[i];
    if (cum[n] != (1u << bits)) fail(Code::Arg, where(fn, "freqs") + ": must sum to 2^bits");
    for (size_t i = 0; i < sym.ElementLength(); ++i)
      if (sym[i] >= n || fr[sym[i]] == 0) fail(Code::Arg, where(fn, "symbols") + ": a symbol without frequency");
    std::vector<uint8_t> buf(4 + 2 * sym.ElementLength());
    codec::RansEncoder e;
    codec::rans_enc_init(e, buf.data() + buf.size());
    for (size_t i = sym.ElementLength(); i-- > 0;) codec::rans_enc_put(e, cum[sym[i]], fr[sym[i]], bits);
    codec::rans_enc_flush(e);
    std::vector<uint8_t> bytes(e.ptr, buf.data() + buf.size());
    codec::RansDecoder d;
    codec::rans_dec_init(d, bytes.data(), bytes.data() + bytes.size());
    Napi::Env env = info.Env();
    auto dec = Napi::Uint8Array::New(env, sym.ElementLength());
    for (size_t i = 0; i < sym.ElementLength(); ++i) {
      uint32_t s = codec::cum_lookup(cum.data(), static_cast<uint32_t>(n), codec::rans_dec_slot(d, bits));
      codec::rans_dec_advance(d, cum[s], cum[s + 1] - cum[s], bits);
      dec[i] = static_cast<uint8_t>(s);
    }
    Napi::Object r = Napi::Object::New(env);
    r.Set("bytes", to_buffer(env, std::move(bytes)));
    r.Set("decoded", dec);
    r.Set("clean", Napi::Boolean::New(env, codec::rans_dec_ok(d)));
    return r;
  });
}

// freqsFromCodes(codes: Uint8Array) -> Uint32Array (12-bit frequencies; all zero for an empty table)
Napi::Value freqs_from_codes(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    auto c = arg_bytes(info, 0, "freqsFromCodes", "codes");
    if (c.ElementLength() < 1 || c.ElementLength() > codec::kMaxAlphabet)
      fail(Code::Arg, "freqsFromCodes: 1..63 codes expected");
    uint32_t f[codec::kMaxAlphabet + 1], cum[codec::kMaxAlphabet + 2];
    const uint32_t n = static_cast<uint32_t>(c.ElementLength());
    codec::freqs_from_codes(c.Data(), n, 12, f, cum);
    auto r = Napi::Uint32Array::New(info.Env(), n);
    for (uint32_t i = 0; i < n; ++i) r[i] = f[i];
    return r;
  });
}

}  // namespace

void export_codec(Napi::Env env, Napi::Object exports) {
  exports.Set("codecEncode", Napi::Function::New(env, codec_encode, "codecEncode"));
  exports.Set("codecInspect", Napi::Function::New(env, codec_inspect, "codecInspect"));
  exports.Set("codecDecode", Napi::Function::New(env, codec_decode, "codecDecode"));
  exports.Set("cachegenCount", Napi::Function::New(env, cachegen_count, "cachegenCount"));
  exports.Set("cachegenReferenceSums", Napi::Function::New(env, cachegen_reference_sums, "cachegenReferenceSums"));
  exports.Set("ransRoundTrip", Napi::Function::New(env, rans_round_trip, "ransRoundTrip"));
  exports.Set("freqsFromCodes", Napi::Function::New(env, freqs_from_codes, "freqsFromCodes"));
  exports.Set("codecBenchCuda", Napi::Function::New(env, codec_bench_cuda, "codecBenchCuda"));
  exports.Set("cachegenProfileCodes", Napi::Function::New(env, cachegen_profile_codes, "cachegenProfileCodes"));
}

}  // namespace kv::binding
