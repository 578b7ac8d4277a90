// CacheGen on the GPU: the kernels of the encoder and the decoder, one thread per channel or per
// rANS stream, running the same inline functions as the C++ codec (native/codec/cachegen_math.h),
// so both write the same bytes. Layouts: KV [plane = layer*2 + k|v][token][channel]; streams
// s = (plane * blocks + block) * C + channel; tables t < planes are the anchor tables of each plane,
// t = planes + plane * C + c the delta tables; each table's cumulative frequencies take kCgCumStride
// u32 in `cum`. Launchers return the launch status; nothing synchronises.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cuda_runtime.h>

namespace kvk {

constexpr uint32_t kCgCumStride = 64;

struct CgDims {
  uint32_t planes, tokens, channels, group, stream_tokens, blocks;
};

// dtype: 0 f32, 1 f16, 2 bf16 (core/dtype.h ids).
// Per (plane, channel) max |x| of the anchors, into maxabs (zeroed first: blocks combine by atomicMax).
cudaError_t cachegen_anchor_maxabs(const void* kv, int dtype, CgDims d, float* maxabs, cudaStream_t s);
// One thread per plane: steps[p*C + c] from the resolution and range maxima (cachegen_math.h
// cg_plane_steps).
cudaError_t cachegen_plane_steps(const float* resolution, const float* range, CgDims d, const float* fraction,
                                 const uint8_t* m, uint16_t* steps, cudaStream_t s);
// Per (plane, channel): max |delta| over the non-anchor tokens into maxabs and max |x| over all its
// tokens into maxabs_raw (both zeroed first).
cudaError_t cachegen_delta_maxabs(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint8_t* m_anchor,
                            const uint8_t* m_delta, float* maxabs, float* maxabs_raw, cudaStream_t s);
// Per plane: raw[p] = forced[p] (forced non-null) or the data's choice (cg_plane_raw); where the
// plane codes deltas, its maxabs copied over maxabs_raw, which is then the range its steps must cover.
cudaError_t cachegen_plane_reference(const float* maxabs, float* maxabs_raw, CgDims d, const uint8_t* forced,
                                     uint8_t* raw, cudaStream_t s);
// Symbol counts into `counts` (zeroed; table t's counts at table_off[t]). max_m_delta: the largest
// m_delta of any plane (sizes the per-thread tables in shared memory; here and below).
cudaError_t cachegen_histogram(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                         const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                         const uint32_t* table_off, uint32_t* counts, cudaStream_t s);
// Table codes from counts (freq.h log_codes_from_counts), one thread per table.
cudaError_t cachegen_codes(const uint32_t* counts, const uint32_t* table_off, const uint8_t* table_n, uint32_t n_tables,
                     uint8_t* codes, cudaStream_t s);
// Cumulative frequencies from codes; sets *bad when a table that `d` and the planes' references (raw)
// need is empty (cachegen_math.h cg_table_needed).
cudaError_t cachegen_cum_tables(const uint8_t* codes, const uint32_t* table_off, const uint8_t* table_n, uint32_t n_tables,
                          CgDims d, const uint8_t* raw, uint32_t* cum, uint32_t* bad, cudaStream_t s);
// Encodes every stream into scratch[s * cap, (s + 1) * cap), right-aligned; lengths[s] its bytes.
cudaError_t cachegen_encode_streams(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                              const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                              const uint32_t* cum, uint8_t* scratch, uint32_t cap, uint32_t* lengths, cudaStream_t s);
// Exclusive prefix sum of n lengths into offsets[0, n). `temp` of *temp_bytes (query with temp = null).
cudaError_t cachegen_scan(const uint32_t* lengths, uint32_t* offsets, uint32_t n, void* temp, size_t* temp_bytes,
                    cudaStream_t s);
// Moves each stream to payload + offsets[s] and adds its payload-check term into *check (zeroed).
cudaError_t cachegen_compact(const uint8_t* scratch, uint32_t cap, const uint32_t* lengths, const uint32_t* offsets,
                       uint32_t n_streams, uint8_t* payload, uint32_t* check, cudaStream_t s);
// Decodes every stream into out (dtype 0/1/2); adds payload-check terms into *check, counts bad streams in *bad.
// steps: the container's anchor then delta steps (little-endian bf16, any alignment).
cudaError_t cachegen_decode_streams(const uint8_t* payload, const uint32_t* offsets, CgDims d, const uint8_t* steps,
                              const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                              const uint32_t* cum, void* out, int out_dtype, uint32_t* check, uint32_t* bad,
                              cudaStream_t s);

}  // namespace kvk
