// The C++ reference of every model op: the truth the CUDA kernels (kernels/*.cu, reached through
// native/cuda/ops.h with the same argument order) are tested against. Row-major, f32, threaded.
// Shapes are given in elements; callers (the binding) have validated every size and range.
#pragma once
#include <cstddef>
#include <cstdint>

#include "../core/dtype.h"

namespace kv::cpu {

// out[i, :] = table[ids[i], :] for i < n. ids are in [0, vocab) (checked by the caller).
void embedding(const int32_t* ids, size_t n, const float* table, size_t dim, float* out);

// out[i, :] = x[i, :] / sqrt(mean(x[i, :]^2) + eps) * w. out may alias x.
void rmsnorm(const float* x, const float* w, float* out, size_t n, size_t dim, float eps);

// out[n, m] = x[n, k] . w[m, k]^T (+ bias[m] when bias != nullptr). f32 accumulation.
void matmul(const float* x, const float* w, const float* bias, float* out, size_t n, size_t k, size_t m);

// In-place rotary embedding, halves convention (pairs (i, i + head_dim/2)), for x[n, heads, head_dim]:
//   theta = float(pos[t]) * inv_freq[i];  (a, b) <- (a cos - b sin, b cos + a sin)
// pos may be negative (re-positioning rotates by a position difference). RoPE scaling variants
// (linear, llama3) are folded into inv_freq by the caller.
void rope(float* x, const int32_t* pos, const float* inv_freq, size_t n, size_t heads, size_t head_dim);

// Causal grouped-query attention by absolute position, for nq queries against nk keys:
//   q[nq, hq, d], k[nk, hkv, d], v[nk, hkv, d], out[nq, hq, d]; hq % hkv == 0, head h reads kv head h / (hq/hkv).
//   Query i attends to exactly the keys j with kpos[j] <= qpos[i], wherever they sit in the buffer;
//   scores = scale * q.k, softmax in f32. A query that sees no key gets zeros.
void attention(const float* q, const float* k, const float* v, const int32_t* qpos, const int32_t* kpos,
               float* out, size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale);

// The attention probability mass each key receives from a few queries (CacheBlend's query-attention
// policy), with q[nq, hq, d] and k[nk, hkv, d] of one float `type` (f32, f16 or bf16: 16-bit inputs
// are read as they are, so the C++ op checks the CUDA one on the very same values), qpos[nq],
// kpos[nk], out[nk] f32; hq % hkv == 0, head h reads kv head g = h / (hq/hkv). For each query i and
// head h: p_ij = softmax over the keys j with kpos[j] <= qpos[i] of scale * q_ih . k_jg, and
// out[j] = sum over i, h of p_ij (0 for a key no query sees; a query that sees no key adds nothing).
// Scores, softmax and sums in double; deterministic whatever the thread count.
void attention_mass(const void* q, const void* k, DType type, const int32_t* qpos, const int32_t* kpos, float* out,
                    size_t nq, size_t nk, size_t hq, size_t hkv, size_t d, float scale);

// out[i] = silu(gate[i]) * up[i] = gate[i] / (1 + exp(-gate[i])) * up[i]. out may alias gate or up.
void swiglu(const float* gate, const float* up, float* out, size_t n);

// out[i] = a[i] + b[i]. out may alias a or b.
void add(const float* a, const float* b, float* out, size_t n);

// Rows by index: gather dst[i, :] = src[idx[i], :]; scatter dst[idx[i], :] = src[i, :].
// width is in bytes (any dtype); idx values are in range (checked by the caller).
void gather_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes);
void scatter_rows(const void* src, const int32_t* idx, void* dst, size_t n, size_t width_bytes);

// CacheBlend's KV deviation: out[r] (+)= sum_c (a[r, c] - b[R, c])^2 over rows r < n of width w, with
// R = b_rows[r] (b_rows non-null: the token's row of a cache slab) or r.
void row_sq_diff(const float* a, const float* b, const int32_t* b_rows, float* out, size_t n, size_t w, bool accumulate);
// out[0..k) = the rows of the k largest of v[0..n) (ties: the lower row), ascending; k <= n.
void top_k_rows(const float* v, size_t n, size_t k, int32_t* out);

// Picks a token from logits[vocab]. temperature <= 0: the first index of the maximum (greedy).
// Otherwise p = softmax(logits / temperature); with top_p < 1 the kept set is {j : p_j >= t} for the
// largest t whose kept mass is >= top_p (ties at t all kept); then the first kept index j (in index
// order) whose running kept mass exceeds u * (kept mass). u in [0, 1) comes from the caller's seeded RNG.
int32_t sample(const float* logits, size_t vocab, float temperature, float top_p, float u);

}  // namespace kv::cpu
