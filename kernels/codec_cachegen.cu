// CacheGen encode and decode kernels (codec_cachegen.cuh). The math is native/codec's, shared with
// the C++ codec; this file only maps it onto threads. Float steps use __fmul_rn/__fadd_rn/__fdiv_rn
// (hd.h) so nothing is contracted into an FMA and both sides round alike.
#include "codec_cachegen.cuh"

#include <cub/device/device_scan.cuh>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "../native/codec/cachegen_math.h"
#include "../native/codec/crc32.h"

namespace kvk {
namespace {

using namespace kv::codec;

constexpr int kThreads = 128;

template <int DT>
__device__ __forceinline__ float load_kv(const void* p, size_t i) {
  if constexpr (DT == 0) return static_cast<const float*>(p)[i];
  else if constexpr (DT == 1) return __half2float(static_cast<const __half*>(p)[i]);
  else return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
}

template <int DT>
__device__ __forceinline__ void store_kv(void* p, size_t i, float v) {
  if constexpr (DT == 0) static_cast<float*>(p)[i] = v;
  else if constexpr (DT == 1) static_cast<__half*>(p)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v);
}

__device__ __forceinline__ uint16_t read_le16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

unsigned grid_for(size_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

// One thread's share of a pass over the KV: channel c of plane p over the token block [t0, t1)
// (t0 % G == 0), the split of the rANS streams (s = (p * blocks + block) * C + c), so a long chunk has
// `blocks` times more threads than channels to keep loads in flight. Maxima and counts of a channel
// are then combined across its blocks with atomics: both are exact and order-free (a max of finite
// non-negative floats orders like their bits; counts are integers), so the bytes stay the host's.
struct Span {
  size_t p, c, pc;
  uint32_t t0, t1;
};

__device__ __forceinline__ bool span_of(const CgDims& d, size_t s, Span& o) {
  if (s >= size_t(d.planes) * d.blocks * d.channels) return false;
  o.c = s % d.channels;
  const size_t blk = (s / d.channels) % d.blocks;
  o.p = s / (size_t(d.channels) * d.blocks);
  o.pc = o.p * d.channels + o.c;
  o.t0 = static_cast<uint32_t>(blk * d.stream_tokens);
  o.t1 = min(d.tokens, o.t0 + d.stream_tokens);
  return true;
}

__device__ __forceinline__ void max_into(float* dst, float v) {
  atomicMax(reinterpret_cast<unsigned int*>(dst), __float_as_uint(v));  // v >= 0, never NaN
}

template <int DT>
__global__ void anchor_maxabs_kernel(const void* kv, CgDims d, float* maxabs) {
  Span sp;
  if (!span_of(d, blockIdx.x * size_t(blockDim.x) + threadIdx.x, sp)) return;
  auto load = [&](uint32_t t) { return load_kv<DT>(kv, (sp.p * d.tokens + sp.t0 + t) * d.channels + sp.c); };
  max_into(maxabs + sp.pc, cg_anchor_maxabs(load, sp.t1 - sp.t0, d.group));
}

__global__ void plane_steps_kernel(const float* resolution, const float* range, CgDims d, const float* fraction,
                                   const uint8_t* m, uint16_t* steps) {
  uint32_t p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= d.planes) return;
  const size_t o = size_t(p) * d.channels;
  cg_plane_steps(resolution + o, range + o, d.channels, fraction[p], m[p], steps + o);
}

template <int DT>
__global__ void delta_maxabs_kernel(const void* kv, CgDims d, const uint16_t* step_a, const uint8_t* ma,
                                    const uint8_t* md, float* maxabs, float* maxabs_raw) {
  Span sp;
  if (!span_of(d, blockIdx.x * size_t(blockDim.x) + threadIdx.x, sp)) return;
  auto load = [&](uint32_t t) { return load_kv<DT>(kv, (sp.p * d.tokens + sp.t0 + t) * d.channels + sp.c); };
  CgChannel ch = cg_channel(step_a[sp.pc], 0, ma[sp.p], md[sp.p]);
  float m_delta, m_raw;
  cg_delta_maxabs(load, sp.t1 - sp.t0, d.group, ch, &m_delta, &m_raw);
  max_into(maxabs + sp.pc, m_delta);
  max_into(maxabs_raw + sp.pc, m_raw);
}

// One thread per plane: its reference (forced, or cg_plane_raw); maxabs_raw then becomes the range
// the delta steps must cover (the delta maxima copied over it where the plane codes deltas).
__global__ void plane_reference_kernel(const float* maxabs, float* maxabs_raw, CgDims d, const uint8_t* forced,
                                       uint8_t* raw) {
  uint32_t p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= d.planes) return;
  const float* md = maxabs + size_t(p) * d.channels;
  float* mr = maxabs_raw + size_t(p) * d.channels;
  const bool r = forced ? forced[p] != 0 : cg_plane_raw(md, mr, d.channels);
  raw[p] = r ? 1 : 0;
  if (!r)
    for (uint32_t c = 0; c < d.channels; ++c) mr[c] = md[c];
}

// Per-thread tables in shared memory, laid out [entry][thread] so the 32 threads of a warp touch 32
// different banks whichever entries they want: in global memory every (plane, channel) table is its
// own cache lines, and a warp's 32 scattered table reads per symbol cost more L2 traffic than the KV.
struct SmemCounts {
  uint32_t* base;  // this thread's column
  uint32_t stride;
  __device__ __forceinline__ uint32_t& operator[](uint32_t k) const { return base[k * stride]; }
};

// Cumulative frequencies (<= 4096, so two per 32-bit word) of one thread's delta table.
struct SmemCum {
  const uint32_t* base;
  uint32_t stride;
  __device__ __forceinline__ uint32_t operator[](uint32_t k) const {
    return (base[(k >> 1) * stride] >> ((k & 1u) << 4)) & 0xffffu;
  }
};

// Copies cum[0..n] (n + 1 entries) of a table into this thread's SmemCum column.
__device__ __forceinline__ SmemCum stage_cum(uint32_t* column, uint32_t stride, const uint32_t* cum, uint32_t n) {
  for (uint32_t k = 0; k <= n; k += 2) {
    uint32_t hi = k + 1 <= n ? cum[k + 1] : 0u;
    column[(k >> 1) * stride] = cum[k] | (hi << 16);
  }
  return SmemCum{column, stride};
}

// Words of shared memory one thread's delta cum table takes (2mD + 2 entries, two a word).
__host__ __device__ constexpr uint32_t cum_words(uint32_t m_delta) { return m_delta + 1; }

template <int DT>
__global__ void histogram_kernel(const void* kv, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                                 const uint8_t* ma, const uint8_t* md, const uint8_t* raw, const uint32_t* table_off,
                                 uint32_t* counts) {
  extern __shared__ uint32_t smem[];  // [kMaxAlphabet + 1] anchor counts, then [2mD+1][blockDim] delta counts
  uint32_t* anchor_hist = smem;
  // The block's first plane: its threads count anchors in shared memory (a plane's anchor table is
  // shared by all its channels); threads of another plane (a block straddles planes only where C is
  // not a multiple of it) add straight to global memory.
  const size_t p0 = (blockIdx.x * size_t(blockDim.x)) / (size_t(d.channels) * d.blocks);
  for (uint32_t k = threadIdx.x; k <= kMaxAlphabet; k += blockDim.x) anchor_hist[k] = 0;
  __syncthreads();
  Span sp;
  if (span_of(d, blockIdx.x * size_t(blockDim.x) + threadIdx.x, sp)) {
    auto load = [&](uint32_t t) { return load_kv<DT>(kv, (sp.p * d.tokens + sp.t0 + t) * d.channels + sp.c); };
    CgChannel ch = cg_channel(step_a[sp.pc], step_d[sp.pc], ma[sp.p], md[sp.p], raw[sp.p] != 0);
    const uint32_t nd = 2 * md[sp.p] + 1;
    SmemCounts hd{smem + kMaxAlphabet + 1 + threadIdx.x, blockDim.x};
    for (uint32_t k = 0; k < nd; ++k) hd[k] = 0;
    uint32_t* ca = counts + table_off[sp.p];
    const uint32_t n = sp.t1 - sp.t0;
    if (sp.p == p0)
      cg_channel_histogram(load, n, d.group, ch, [&](uint32_t s) { atomicAdd(anchor_hist + s, 1u); }, hd);
    else
      cg_channel_histogram(load, n, d.group, ch, [&](uint32_t s) { atomicAdd(ca + s, 1u); }, hd);
    uint32_t* cd = counts + table_off[d.planes + sp.pc];
    for (uint32_t k = 0; k < nd; ++k)
      if (hd[k]) atomicAdd(cd + k, hd[k]);
  }
  __syncthreads();
  if (p0 < d.planes) {
    uint32_t* ca = counts + table_off[p0];
    const uint32_t na = 2 * ma[p0] + 1;
    for (uint32_t k = threadIdx.x; k < na; k += blockDim.x)
      if (anchor_hist[k]) atomicAdd(ca + k, anchor_hist[k]);
  }
}

__global__ void codes_kernel(const uint32_t* counts, const uint32_t* table_off, const uint8_t* table_n,
                             uint32_t n_tables, uint8_t* codes) {
  uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n_tables) return;
  log_codes_from_counts(counts + table_off[t], table_n[t], codes + table_off[t], 0);
}

__global__ void cum_kernel(const uint8_t* codes, const uint32_t* table_off, const uint8_t* table_n, uint32_t n_tables,
                           CgDims d, const uint8_t* raw, uint32_t* cum, uint32_t* bad) {
  uint32_t t = blockIdx.x * blockDim.x + threadIdx.x;
  if (t >= n_tables) return;
  uint32_t freq[kMaxAlphabet + 1];
  bool ok = freqs_from_codes(codes + table_off[t], table_n[t], kProbBits, freq, cum + size_t(t) * kCgCumStride);
  const bool anchor = t < d.planes;
  const uint32_t p = anchor ? t : (t - d.planes) / d.channels;
  bool needed = cg_table_needed(anchor, raw[p] != 0, d.tokens, d.group);
  if (!ok && needed) atomicAdd(bad, 1u);
}

template <int DT>
__global__ void encode_kernel(const void* kv, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                              const uint8_t* ma, const uint8_t* md, const uint8_t* raw, const uint32_t* cum,
                              uint8_t* scratch, uint32_t cap, uint32_t* lengths) {
  extern __shared__ uint32_t smem[];  // [cum_words][blockDim]: each thread's delta table
  size_t s = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  size_t n_streams = size_t(d.planes) * d.blocks * d.channels;
  if (s >= n_streams) return;
  size_t c = s % d.channels, blk = (s / d.channels) % d.blocks, p = s / (size_t(d.channels) * d.blocks);
  size_t pc = p * d.channels + c;
  uint32_t t0 = static_cast<uint32_t>(blk * d.stream_tokens);
  uint32_t t1 = min(d.tokens, t0 + d.stream_tokens);
  CgChannel ch = cg_channel(step_a[pc], step_d[pc], ma[p], md[p], raw[p] != 0);
  auto load = [&](uint32_t t) { return load_kv<DT>(kv, (p * d.tokens + t) * d.channels + c); };
  SmemCum cd = stage_cum(smem + threadIdx.x, blockDim.x, cum + (d.planes + pc) * kCgCumStride, 2 * md[p] + 1);
  uint8_t* end = scratch + (s + 1) * cap;
  lengths[s] = cg_encode_stream(load, t0, t1, d.group, ch, cum + p * kCgCumStride, cd, end);
}

__device__ __forceinline__ void load_crc_table(uint32_t* table) {
  for (uint32_t i = threadIdx.x; i < 256; i += blockDim.x) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  __syncthreads();
}

__device__ __forceinline__ void add_check(uint32_t* check, uint32_t term) {
  for (int off = 16; off > 0; off >>= 1) term += __shfl_down_sync(0xffffffffu, term, off);
  if ((threadIdx.x & 31) == 0) atomicAdd(check, term);
}

// Moves each stream from its right-aligned scratch slot to its place in the payload and checksums it.
// A thread per stream would touch 32 cache lines per warp instruction, byte by byte (most of the
// encode's time); instead each warp takes 32 streams and moves them one at a time, the 32 lanes
// copying consecutive 16-bit words (streams have even lengths and even offsets), in windows of
// kWindow bytes that also land in shared memory, where each lane then runs its own stream's CRC.
constexpr uint32_t kWindow = 64;
constexpr uint32_t kWindowPitch = kWindow + 4;  // 17 words: lane l's row starts in bank 17 l mod 32

__global__ void compact_kernel(const uint8_t* scratch, uint32_t cap, const uint32_t* lengths, const uint32_t* offsets,
                               uint32_t n_streams, uint8_t* payload, uint32_t* check) {
  __shared__ uint32_t table[256];
  __shared__ uint8_t window[kThreads / 32][32][kWindowPitch];
  load_crc_table(table);
  const uint32_t lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const size_t s = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  const size_t s_base = s - lane;
  const uint32_t len = s < n_streams ? lengths[s] : 0;
  const uint32_t offset = s < n_streams ? offsets[s] : 0;
  uint32_t longest = len;
  for (int off = 16; off > 0; off >>= 1) longest = max(longest, __shfl_xor_sync(0xffffffffu, longest, off));
  uint8_t(*win)[kWindowPitch] = window[warp];
  uint32_t crc = ~0u;
  for (uint32_t base = 0; base < longest; base += kWindow) {
    for (uint32_t j = 0; j < 32; ++j) {
      const uint32_t len_j = __shfl_sync(0xffffffffu, len, j);
      const uint32_t offset_j = __shfl_sync(0xffffffffu, offset, j);
      const uint32_t at = base + 2 * lane;
      if (at < len_j) {
        const size_t sj = s_base + j;
        const uint16_t w = *reinterpret_cast<const uint16_t*>(scratch + (sj + 1) * cap - len_j + at);
        *reinterpret_cast<uint16_t*>(payload + offset_j + at) = w;
        *reinterpret_cast<uint16_t*>(&win[j][2 * lane]) = w;
      }
    }
    __syncwarp();
    const uint32_t n = len > base ? min(kWindow, len - base) : 0;
    for (uint32_t i = 0; i < n; ++i) crc = table[(crc ^ win[lane][i]) & 0xffu] ^ (crc >> 8);
    __syncwarp();
  }
  add_check(check, s < n_streams ? payload_check_term(~crc, s) : 0u);
}

template <int DT>
__global__ void decode_kernel(const uint8_t* payload, const uint32_t* offsets, CgDims d, const uint8_t* steps,
                              const uint8_t* ma, const uint8_t* md, const uint8_t* raw, const uint32_t* cum, void* out,
                              uint32_t* check, uint32_t* bad) {
  extern __shared__ uint32_t smem[];  // CRC table [256], then [cum_words][blockDim]: each thread's delta table
  uint32_t* table = smem;
  load_crc_table(table);
  size_t s = blockIdx.x * size_t(blockDim.x) + threadIdx.x;
  size_t n_streams = size_t(d.planes) * d.blocks * d.channels;
  uint32_t term = 0;
  if (s < n_streams) {
    size_t c = s % d.channels, blk = (s / d.channels) % d.blocks, p = s / (size_t(d.channels) * d.blocks);
    size_t pc = p * d.channels + c;
    size_t n_pc = size_t(d.planes) * d.channels;
    uint32_t t0 = static_cast<uint32_t>(blk * d.stream_tokens);
    uint32_t t1 = min(d.tokens, t0 + d.stream_tokens);
    CgChannel ch = cg_channel(read_le16(steps + 2 * pc), read_le16(steps + 2 * (n_pc + pc)), ma[p], md[p], raw[p] != 0);
    const uint8_t* sp = payload + offsets[s];
    const uint8_t* se = payload + offsets[s + 1];
    auto store = [&](uint32_t t, float v) { store_kv<DT>(out, (p * d.tokens + t) * d.channels + c, v); };
    SmemCum cd = stage_cum(smem + 256 + threadIdx.x, blockDim.x, cum + (d.planes + pc) * kCgCumStride, 2 * md[p] + 1);
    if (!cg_decode_stream(store, sp, se, t0, t1, d.group, ch, cum + p * kCgCumStride, cd))
      atomicAdd(bad, 1u);
    uint32_t crc = ~0u;
    for (const uint8_t* q = sp; q < se; ++q) crc = table[(crc ^ *q) & 0xffu] ^ (crc >> 8);
    term = payload_check_term(~crc, s);
  }
  add_check(check, term);
}

#define KVK_DISPATCH_SMEM(dtype, KERNEL, grid, smem, ...)                       \
  switch (dtype) {                                                               \
    case 0: KERNEL<0><<<grid, kThreads, smem, s>>>(__VA_ARGS__); break;          \
    case 1: KERNEL<1><<<grid, kThreads, smem, s>>>(__VA_ARGS__); break;          \
    case 2: KERNEL<2><<<grid, kThreads, smem, s>>>(__VA_ARGS__); break;          \
    default: return cudaErrorInvalidValue;                                       \
  }
#define KVK_DISPATCH(dtype, KERNEL, grid, ...) KVK_DISPATCH_SMEM(dtype, KERNEL, grid, 0, __VA_ARGS__)

}  // namespace

cudaError_t cachegen_anchor_maxabs(const void* kv, int dtype, CgDims d, float* maxabs, cudaStream_t s) {
  KVK_DISPATCH(dtype, anchor_maxabs_kernel, grid_for(size_t(d.planes) * d.blocks * d.channels), kv, d, maxabs);
  return cudaGetLastError();
}

cudaError_t cachegen_plane_steps(const float* resolution, const float* range, CgDims d, const float* fraction,
                                 const uint8_t* m, uint16_t* steps, cudaStream_t s) {
  plane_steps_kernel<<<grid_for(d.planes), kThreads, 0, s>>>(resolution, range, d, fraction, m, steps);
  return cudaGetLastError();
}

cudaError_t cachegen_delta_maxabs(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint8_t* m_anchor,
                            const uint8_t* m_delta, float* maxabs, float* maxabs_raw, cudaStream_t s) {
  KVK_DISPATCH(dtype, delta_maxabs_kernel, grid_for(size_t(d.planes) * d.blocks * d.channels), kv, d, step_a, m_anchor, m_delta,
               maxabs, maxabs_raw);
  return cudaGetLastError();
}

cudaError_t cachegen_plane_reference(const float* maxabs, float* maxabs_raw, CgDims d, const uint8_t* forced,
                                     uint8_t* raw, cudaStream_t s) {
  plane_reference_kernel<<<grid_for(d.planes), kThreads, 0, s>>>(maxabs, maxabs_raw, d, forced, raw);
  return cudaGetLastError();
}

cudaError_t cachegen_histogram(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                         const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                         const uint32_t* table_off, uint32_t* counts, cudaStream_t s) {
  if (max_m_delta < 1 || max_m_delta > kMaxLevel) return cudaErrorInvalidValue;
  const size_t smem = (kMaxAlphabet + 1 + (2 * max_m_delta + 1) * kThreads) * 4;
  KVK_DISPATCH_SMEM(dtype, histogram_kernel, grid_for(size_t(d.planes) * d.blocks * d.channels), smem, kv, d, step_a, step_d,
                    m_anchor, m_delta, raw, table_off, counts);
  return cudaGetLastError();
}

cudaError_t cachegen_codes(const uint32_t* counts, const uint32_t* table_off, const uint8_t* table_n, uint32_t n_tables,
                     uint8_t* codes, cudaStream_t s) {
  codes_kernel<<<grid_for(n_tables), kThreads, 0, s>>>(counts, table_off, table_n, n_tables, codes);
  return cudaGetLastError();
}

cudaError_t cachegen_cum_tables(const uint8_t* codes, const uint32_t* table_off, const uint8_t* table_n, uint32_t n_tables,
                          CgDims d, const uint8_t* raw, uint32_t* cum, uint32_t* bad, cudaStream_t s) {
  cum_kernel<<<grid_for(n_tables), kThreads, 0, s>>>(codes, table_off, table_n, n_tables, d, raw, cum, bad);
  return cudaGetLastError();
}

cudaError_t cachegen_encode_streams(const void* kv, int dtype, CgDims d, const uint16_t* step_a, const uint16_t* step_d,
                              const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                              const uint32_t* cum, uint8_t* scratch, uint32_t cap, uint32_t* lengths, cudaStream_t s) {
  if (max_m_delta < 1 || max_m_delta > kMaxLevel) return cudaErrorInvalidValue;
  const size_t smem = cum_words(max_m_delta) * kThreads * 4;
  KVK_DISPATCH_SMEM(dtype, encode_kernel, grid_for(size_t(d.planes) * d.blocks * d.channels), smem, kv, d, step_a,
                    step_d, m_anchor, m_delta, raw, cum, scratch, cap, lengths);
  return cudaGetLastError();
}

cudaError_t cachegen_scan(const uint32_t* lengths, uint32_t* offsets, uint32_t n, void* temp, size_t* temp_bytes,
                    cudaStream_t s) {
  return cub::DeviceScan::ExclusiveSum(temp, *temp_bytes, lengths, offsets, static_cast<int>(n), s);
}

cudaError_t cachegen_compact(const uint8_t* scratch, uint32_t cap, const uint32_t* lengths, const uint32_t* offsets,
                       uint32_t n_streams, uint8_t* payload, uint32_t* check, cudaStream_t s) {
  compact_kernel<<<grid_for(n_streams), kThreads, 0, s>>>(scratch, cap, lengths, offsets, n_streams, payload, check);
  return cudaGetLastError();
}

cudaError_t cachegen_decode_streams(const uint8_t* payload, const uint32_t* offsets, CgDims d, const uint8_t* steps,
                              const uint8_t* m_anchor, const uint8_t* m_delta, const uint8_t* raw, uint32_t max_m_delta,
                              const uint32_t* cum, void* out, int out_dtype, uint32_t* check, uint32_t* bad,
                              cudaStream_t s) {
  if (max_m_delta < 1 || max_m_delta > kMaxLevel) return cudaErrorInvalidValue;
  const size_t smem = (256 + cum_words(max_m_delta) * kThreads) * 4;
  KVK_DISPATCH_SMEM(out_dtype, decode_kernel, grid_for(size_t(d.planes) * d.blocks * d.channels), smem, payload,
                    offsets, d, steps, m_anchor, m_delta, raw, cum, out, check, bad);
  return cudaGetLastError();
}

}  // namespace kvk
