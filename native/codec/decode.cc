// decode_host: dispatches a parsed container to its codec's decoder.
#include "../core/status.h"
#include "codec.h"

namespace kv::codec {

void decode_cachegen_host(const Parsed& p, void* out, DType out_type, const DecodeProfile* profile);
void decode_baseline_host(const Parsed& p, void* out, DType out_type);
void decode_released_host(const Parsed& p, void* out, DType out_type);

void decode_host(const Parsed& p, void* out, DType out_type, const DecodeProfile* profile) {
  if (out_type != DType::F32 && out_type != DType::F16 && out_type != DType::BF16)
    fail(Code::DType, std::string("codec: decoded KV must be f32, f16 or bf16, got ") + dtype_name(out_type));
  if (out == nullptr) fail(Code::Arg, "codec: null output");
  switch (p.meta.codec) {
    case CodecId::Cachegen: return decode_cachegen_host(p, out, out_type, profile);
    case CodecId::CachegenReleased: return decode_released_host(p, out, out_type);
    default: return decode_baseline_host(p, out, out_type);
  }
}

}  // namespace kv::codec
