// The CUDA runtime of a build without the CUDA backend: it reports why, and every call that needs
// a GPU throws kv::Error(Device) with that reason. KVLAB_CUDA_REASON comes from CMake.
#include "codec_ops.h"
#include "ops.h"
#include "runtime.h"

#include "../core/status.h"
#include "build_info.h"

namespace kv::cuda {

const Info& info() {
  static const Info in = [] {
    Info i{};
    i.compiled = false;
    i.reason = "CUDA backend not built: " KVLAB_CUDA_REASON;
    i.cublas_reason = KVLAB_CUBLAS_REASON;
    return i;
  }();
  return in;
}

[[noreturn]] static void unavailable() { fail(Code::Device, info().reason); }

void require_device(int) { unavailable(); }
void* device_alloc(int, size_t) { unavailable(); }
void device_free(int, void*) noexcept {}
void* host_alloc_pinned(size_t) { unavailable(); }
void host_free_pinned(void*) noexcept {}
Stream stream_create(int) { unavailable(); }
void stream_destroy(int, Stream) noexcept {}
void stream_synchronize(int, Stream) { unavailable(); }
Event event_record(int, Stream) { unavailable(); }
void event_wait_and_destroy(int, Event) { unavailable(); }
void event_destroy(int, Event) noexcept {}
void profiler_range(int, bool) { unavailable(); }
void memcpy(void*, int, const void*, int, size_t, Stream, bool) { unavailable(); }
void memcpy2d(void*, int, size_t, const void*, int, size_t, size_t, size_t) { unavailable(); }
void cast(int, const void*, DType, void*, DType, size_t, Stream) { unavailable(); }
void fill_uniform(int, void*, DType, size_t, uint64_t, float, float, Stream) { unavailable(); }


// Model ops (ops.h).
void embedding(int, const int32_t*, size_t, const void*, DType, size_t, void*, DType, Stream) { unavailable(); }
void rmsnorm(int, const void*, const void*, void*, DType, size_t, size_t, float, Stream) { unavailable(); }
void matmul(int, const void*, const void*, const void*, void*, DType, size_t, size_t, size_t, Stream) { unavailable(); }
void matmul_add(int, const void*, const void*, void*, DType, size_t, size_t, size_t, Stream) { unavailable(); }
void rope(int, void*, DType, const int32_t*, const float*, size_t, size_t, size_t, Stream) { unavailable(); }
void rope_qk_scatter(int, void*, const void*, const void*, DType, const int32_t*, const float*, const int32_t*, void*, void*,
                     size_t, size_t, size_t, size_t, Stream) {
  unavailable();
}
void attention(int, const void*, const void*, const void*, DType, const int32_t*, const int32_t*, void*, size_t, size_t,
               size_t, size_t, size_t, float, Stream) { unavailable(); }
void attention_mass(int, const void*, const void*, DType, const int32_t*, const int32_t*, float*, size_t, size_t, size_t,
                    size_t, size_t, float, Stream) {
  unavailable();
}
void swiglu(int, const void*, const void*, void*, DType, size_t, Stream) { unavailable(); }
void add(int, const void*, const void*, void*, DType, size_t, Stream) { unavailable(); }
void row_sq_diff(int, const void*, const void*, const int32_t*, float*, DType, size_t, size_t, bool, Stream) { unavailable(); }
void top_k_rows(int, const float*, size_t, size_t, int32_t*, Stream) { unavailable(); }
bool decode_gemv_supported(const void*, const DecodeGemvPart*, int, DType, size_t, size_t) { return false; }
void decode_gemv(int, const void*, const void*, float, const DecodeGemvPart*, int, DecodeEpilogue, DType, size_t, size_t,
                 Stream) {
  unavailable();
}
void gather_rows(int, const void*, const int32_t*, void*, size_t, size_t, Stream) { unavailable(); }
void scatter_rows(int, const void*, const int32_t*, void*, size_t, size_t, Stream) { unavailable(); }
void sample(int, const float*, size_t, float, float, float, int32_t*, Stream) { unavailable(); }

// The CacheGen codec (codec_ops.h).
std::vector<uint8_t> cachegen_encode(int, uint8_t, const codec::KvInput&, const codec::CachegenOptions&) { unavailable(); }
void cachegen_decode(int, const uint8_t*, size_t, const codec::Parsed&, const codec::DecodeProfile*, void*, DType) {
  unavailable();
}
CodecBench cachegen_bench(int, uint8_t, const codec::KvInput&, const codec::CachegenOptions&, void*, DType, int) {
  unavailable();
}

}  // namespace kv::cuda
