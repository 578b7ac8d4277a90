#include "layer.h"

#include "../core/status.h"
#include "../cpu/ops.h"
#include "../cuda/ops.h"

namespace kv::engine {
namespace {

template <typename T = void>
T* p(const std::shared_ptr<Storage>& s) { return s ? static_cast<T*>(s->data) : nullptr; }

}  // namespace

Plan::Plan(const Dims& d, std::vector<LayerWeights> layers, std::shared_ptr<Storage> inv_freq)
    : d_(d), layers_(std::move(layers)), inv_freq_(std::move(inv_freq)) {
  if (d_.device == kHost && d_.dtype != DType::F32) fail(Code::DType, "layer plan: the CPU backend computes in f32");
}

// Scratch buffer i, grown to at least `bytes` (never shrunk). Growth on a device frees the old
// buffer, which cudaFree orders after the work already queued.
void* Plan::scratch(size_t i, size_t bytes) {
  if (scratch_.size() <= i) scratch_.resize(i + 1);
  if (!scratch_[i] || scratch_[i]->bytes < bytes) scratch_[i] = storage_alloc(d_.device, bytes, false);
  return scratch_[i]->data;
}

void Plan::run_layer(size_t l, const LayerIO& io, cuda::Stream st) {
  if (l >= layers_.size()) fail(Code::Arg, "layer plan: layer " + std::to_string(l) + " does not exist");
  const LayerWeights& w = layers_[l];
  const size_t n = io.n, D = d_.dim, F = d_.hidden, hd = d_.head_dim;
  const size_t qd = d_.n_heads * hd, kvd = d_.n_kv_heads * hd, es = dtype_size(d_.dtype);
  void* h = scratch(0, n * D * es);
  void* q = scratch(1, n * qd * es);
  void* k = scratch(2, n * kvd * es);
  void* v = scratch(3, n * kvd * es);
  void* att = scratch(4, n * qd * es);
  void* g = scratch(6, n * F * es);
  void* u = scratch(7, n * F * es);
  const int dev = d_.device;
  const DType t = d_.dtype;
  if (dev == kHost) {
    auto f = [](void* x) { return static_cast<float*>(x); };
    float* x = f(io.x);
    float* o = f(scratch(5, n * D * es));
    cpu::rmsnorm(x, p<float>(w.attn_norm), f(h), n, D, d_.eps);
    cpu::matmul(f(h), p<float>(w.wq), p<float>(w.bq), f(q), n, D, qd);
    cpu::matmul(f(h), p<float>(w.wk), p<float>(w.bk), f(k), n, D, kvd);
    cpu::matmul(f(h), p<float>(w.wv), p<float>(w.bv), f(v), n, D, kvd);
    cpu::rope(f(q), io.pos, p<float>(inv_freq_), n, d_.n_heads, hd);
    cpu::rope(f(k), io.pos, p<float>(inv_freq_), n, d_.n_kv_heads, hd);
    cpu::scatter_rows(k, io.slots, io.k_cache, n, kvd * 4);
    cpu::scatter_rows(v, io.slots, io.v_cache, n, kvd * 4);
    cpu::attention(f(q), f(io.k_cache), f(io.v_cache), io.pos, io.kpos, f(att), n, io.nk, d_.n_heads, d_.n_kv_heads,
                   hd, d_.scale);
    cpu::matmul(f(att), p<float>(w.wo), nullptr, o, n, qd, D);
    cpu::add(x, o, x, n * D);
    cpu::rmsnorm(x, p<float>(w.ffn_norm), f(h), n, D, d_.eps);
    cpu::matmul(f(h), p<float>(w.w1), nullptr, f(g), n, D, F);
    cpu::matmul(f(h), p<float>(w.w3), nullptr, f(u), n, D, F);
    cpu::swiglu(f(g), f(u), f(g), n * F);
    cpu::matmul(f(g), p<float>(w.w2), nullptr, o, n, F, D);
    cpu::add(x, o, x, n * D);
    return;
  }
  void* x = io.x;
  if (d_.fused_decode && run_fused_decode(w, io, q, k, v, att, g, st)) return;
  cuda::rmsnorm(dev, x, p(w.attn_norm), h, t, n, D, d_.eps, st);
  cuda::matmul(dev, h, p(w.wq), p(w.bq), q, t, n, D, qd, st);
  cuda::matmul(dev, h, p(w.wk), p(w.bk), k, t, n, D, kvd, st);
  cuda::matmul(dev, h, p(w.wv), p(w.bv), v, t, n, D, kvd, st);
  attend_cuda(io, q, k, v, att, st);
  cuda::matmul_add(dev, att, p(w.wo), x, t, n, qd, D, st);
  cuda::rmsnorm(dev, x, p(w.ffn_norm), h, t, n, D, d_.eps, st);
  cuda::matmul(dev, h, p(w.w1), nullptr, g, t, n, D, F, st);
  cuda::matmul(dev, h, p(w.w3), nullptr, u, t, n, D, F, st);
  cuda::swiglu(dev, g, u, g, t, n * F, st);
  cuda::matmul_add(dev, g, p(w.w2), x, t, n, F, D, st);
}

void Plan::run_kv(size_t l, const LayerIO& io, cuda::Stream st) {
  if (l >= layers_.size()) fail(Code::Arg, "layer plan: layer " + std::to_string(l) + " does not exist");
  const LayerWeights& w = layers_[l];
  const size_t n = io.n, D = d_.dim, hd = d_.head_dim, kvd = d_.n_kv_heads * hd, es = dtype_size(d_.dtype);
  void* h = scratch(0, n * D * es);
  void* k = scratch(2, n * kvd * es);
  void* v = scratch(3, n * kvd * es);
  const int dev = d_.device;
  if (dev == kHost) {
    auto f = [](void* x) { return static_cast<float*>(x); };
    cpu::rmsnorm(f(io.x), p<float>(w.attn_norm), f(h), n, D, d_.eps);
    cpu::matmul(f(h), p<float>(w.wk), p<float>(w.bk), f(k), n, D, kvd);
    cpu::matmul(f(h), p<float>(w.wv), p<float>(w.bv), f(v), n, D, kvd);
    cpu::rope(f(k), io.pos, p<float>(inv_freq_), n, d_.n_kv_heads, hd);
    cpu::scatter_rows(k, io.slots, io.k_cache, n, kvd * 4);
    cpu::scatter_rows(v, io.slots, io.v_cache, n, kvd * 4);
    return;
  }
  const DType t = d_.dtype;
  cuda::rmsnorm(dev, io.x, p(w.attn_norm), h, t, n, D, d_.eps, st);
  cuda::matmul(dev, h, p(w.wk), p(w.bk), k, t, n, D, kvd, st);
  cuda::matmul(dev, h, p(w.wv), p(w.bv), v, t, n, D, kvd, st);
  // No query heads: k rotated into its cache rows and v copied there, in one launch.
  cuda::rope_qk_scatter(dev, nullptr, k, v, t, io.pos, p<float>(inv_freq_), io.slots, io.k_cache, io.v_cache, n, 0,
                        d_.n_kv_heads, hd, st);
}

// RoPE on the new tokens' q and k, their k and v into the cache slots, attention over the cache.
void Plan::attend_cuda(const LayerIO& io, void* q, void* k, void* v, void* att, cuda::Stream st) {
  const size_t n = io.n, hd = d_.head_dim;
  const int dev = d_.device;
  const DType t = d_.dtype;
  cuda::rope_qk_scatter(dev, q, k, v, t, io.pos, p<float>(inv_freq_), io.slots, io.k_cache, io.v_cache, n, d_.n_heads,
                        d_.n_kv_heads, hd, st);
  cuda::attention(dev, q, io.k_cache, io.v_cache, t, io.pos, io.kpos, att, n, io.nk, d_.n_heads, d_.n_kv_heads, hd,
                  d_.scale, st);
}

// The decode step on CUDA in 4 fused projections + rope, scatter and attention (10 launches, not
// 17): false, with nothing run, when the shapes do not qualify (more than 4 tokens, unaligned rows).
bool Plan::run_fused_decode(const LayerWeights& w, const LayerIO& io, void* q, void* k, void* v, void* att, void* g,
                            cuda::Stream st) {
  using cuda::DecodeEpilogue;
  using cuda::DecodeGemvPart;
  const size_t n = io.n, D = d_.dim, F = d_.hidden, hd = d_.head_dim;
  const size_t qd = d_.n_heads * hd, kvd = d_.n_kv_heads * hd, es = dtype_size(d_.dtype);
  void* u = scratch(7, n * F * es);
  const DecodeGemvPart qkv[3] = {{p(w.wq), p(w.bq), q, qd}, {p(w.wk), p(w.bk), k, kvd}, {p(w.wv), p(w.bv), v, kvd}};
  const DecodeGemvPart o_proj[1] = {{p(w.wo), nullptr, io.x, D}};
  const DecodeGemvPart gate_up[2] = {{p(w.w1), nullptr, g, F}, {p(w.w3), nullptr, u, F}};
  const DecodeGemvPart down[1] = {{p(w.w2), nullptr, io.x, D}};
  const DType t = d_.dtype;
  if (!cuda::decode_gemv_supported(io.x, qkv, 3, t, n, D) || !cuda::decode_gemv_supported(att, o_proj, 1, t, n, qd) ||
      !cuda::decode_gemv_supported(io.x, gate_up, 2, t, n, D) || !cuda::decode_gemv_supported(g, down, 1, t, n, F))
    return false;
  const int dev = d_.device;
  cuda::decode_gemv(dev, io.x, p(w.attn_norm), d_.eps, qkv, 3, DecodeEpilogue::Store, t, n, D, st);
  attend_cuda(io, q, k, v, att, st);
  cuda::decode_gemv(dev, att, nullptr, 0.0f, o_proj, 1, DecodeEpilogue::AddInto, t, n, qd, st);
  cuda::decode_gemv(dev, io.x, p(w.ffn_norm), d_.eps, gate_up, 2, DecodeEpilogue::Swiglu, t, n, D, st);
  cuda::decode_gemv(dev, g, nullptr, 0.0f, down, 1, DecodeEpilogue::AddInto, t, n, F, st);
  return true;
}

}  // namespace kv::engine
