// Model ops on a CUDA device: the same math, argument order and aliasing rules as native/cpu/ops.h
// (read that file for each op's definition), with dtypes. Activations and weights may be f32, f16
// or bf16 (DType ids of core/dtype.h); every kernel computes in f32. All pointers are device
// pointers on `device`; work is queued on `stream` (nullptr = the legacy default stream) and
// the functions return without synchronising. Failures throw kv::Error (Cuda, OOM, Device).
// Implemented in ops.cc (CUDA build) and unavailable.cc (CPU-only build).
#pragma once
#include <cstddef>
#include <cstdint>

#include "../core/dtype.h"
#include "runtime.h"

namespace kv::cuda {

void embedding(int device, const int32_t* ids, size_t n, const void* table, DType table_type, size_t dim,
               void* out, DType out_type, Stream s);

void rmsnorm(int device, const void* x, const void* w, void* out, DType type, size_t n, size_t dim, float eps,
             Stream s);

// cuBLAS: out[n, m] = x[n, k] . w[m, k]^T (+ bias[m]); x, w, bias and out share `type`;
// f32 accumulation (CUBLAS_COMPUTE_32F) for every type.
void matmul(int device, const void* x, const void* w, const void* bias, void* out, DType type, size_t n,
            size_t k, size_t m, Stream s);
// out[n, m] += x[n, k] . w[m, k]^T, summed in f32 and rounded once (a projection and its residual add).
void matmul_add(int device, const void* x, const void* w, void* out, DType type, size_t n, size_t k, size_t m,
                Stream s);

void rope(int device, void* x, DType type, const int32_t* pos, const float* inv_freq, size_t n, size_t heads,
          size_t head_dim, Stream s);
// rope on q in place and on k into the cache rows `slots`, v copied there (kernels/rope.cuh).
void rope_qk_scatter(int device, void* q, const void* k, const void* v, DType type, const int32_t* pos,
                     const float* inv_freq, const int32_t* slots, void* k_cache, void* v_cache, size_t n, size_t hq,
                     size_t hkv, size_t head_dim, Stream s);

// Tiled, online-softmax attention (the same definition as cpu::attention).
void attention(int device, const void* q, const void* k, const void* v, DType type, const int32_t* qpos,
               const int32_t* kpos, void* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d,
               float scale, Stream s);

// The attention mass per key (the same definition as cpu::attention_mass; kernels/attention_mass.cuh):
// out[nk] f32, two kernels with a (max, sum) per (query, head) pair in stream-ordered scratch,
// deterministic. head_dim up to 4096.
void attention_mass(int device, const void* q, const void* k, DType type, const int32_t* qpos, const int32_t* kpos,
                    float* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale, Stream s);

void swiglu(int device, const void* gate, const void* up, void* out, DType type, size_t n, Stream s);

void add(int device, const void* a, const void* b, void* out, DType type, size_t n, Stream s);

// The decode step's projections fused with the RMSNorm before them and the bias, SwiGLU or residual
// add after them (kernels/decode_gemv.cuh has the exact contract). `decode_gemv_supported` says
// whether the shapes qualify; decode_gemv throws if they do not.
struct DecodeGemvPart {
  const void* w;
  const void* bias;
  void* out;
  size_t m;
};
enum class DecodeEpilogue { Store = 0, AddInto = 1, Swiglu = 2 };
bool decode_gemv_supported(const void* x, const DecodeGemvPart* parts, int nparts, DType type, size_t n, size_t k);
void decode_gemv(int device, const void* x, const void* norm_w, float eps, const DecodeGemvPart* parts, int nparts,
                 DecodeEpilogue ep, DType type, size_t n, size_t k, Stream s);

void top_k_rows(int device, const float* v, size_t n, size_t k, int32_t* out, Stream s);
// b_rows: null, or the row of b each row of a is compared with (kernels/deviation.cuh).
void row_sq_diff(int device, const void* a, const void* b, const int32_t* b_rows, float* out, DType type, size_t n, size_t w,
                 bool accumulate, Stream s);
void gather_rows(int device, const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                 Stream s);
void scatter_rows(int device, const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes,
                  Stream s);

// logits is f32 on the device; the chosen id is written to *out_id (device memory, one int32).
void sample(int device, const float* logits, size_t vocab, float temperature, float top_p, float u,
            int32_t* out_id, Stream s);

}  // namespace kv::cuda
