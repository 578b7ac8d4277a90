// The CacheGen codec on a CUDA device (kernels/codec_cachegen.cu), with plain C++ types so the
// binding compiles without CUDA headers. Both produce exactly the bytes of the host codec
// (native/codec): the container is assembled on the host from the kernels' outputs.
// Implemented in codec_ops.cc (CUDA build) and unavailable.cc (CPU-only build).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../codec/codec.h"

namespace kv::cuda {

// `in.data` is device memory on `device`; returns the whole container in host memory.
std::vector<uint8_t> cachegen_encode(int device, uint8_t level, const codec::KvInput& in,
                                     const codec::CachegenOptions& opt);

// Decodes the parsed container `p` (whose bytes are `bytes`, host memory) into device memory `out`.
void cachegen_decode(int device, const uint8_t* bytes, size_t size, const codec::Parsed& p,
                     const codec::DecodeProfile* profile, void* out, DType out_type);

// Device timings for the benchmark: median milliseconds of `reps` runs of the device part of encode
// (KV on the device -> compacted streams + side information on the device) and decode (container on
// the device -> KV on the device), after a warm-up, with CUDA events. Also returns the container the
// encode produced (to check it against the host codec) and checks that the decode ran cleanly.
struct CodecBench {
  std::vector<double> encode_ms, decode_ms;
  std::vector<uint8_t> container;
};
CodecBench cachegen_bench(int device, uint8_t level, const codec::KvInput& in, const codec::CachegenOptions& opt,
                          void* out, DType out_type, int reps);

}  // namespace kv::cuda
