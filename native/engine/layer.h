// One transformer layer of the Llama family as a single native call: the same sequence of ops the
// TypeScript engine used to issue one by one (rmsnorm, QKV projections with optional bias, RoPE,
// K/V scatter into the cache slots, attention by absolute position, output projection, residual,
// rmsnorm, SwiGLU MLP, residual), dispatched to the C++ reference on the host or to the CUDA ops.
// One call per layer instead of ~20 keeps the host out of the way of the GPU when decoding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../core/dtype.h"
#include "../core/storage.h"
#include "../cuda/runtime.h"

namespace kv::engine {

struct Dims {
  size_t dim, hidden, n_heads, n_kv_heads, head_dim;
  float eps, scale;
  DType dtype;
  int device;  // kHost or a CUDA ordinal
  bool fused_decode = true;  // CUDA, n <= 4: projections fused with their norm / epilogue
};

// Storages of one layer's weights (bias entries may be null). Held so that disposing the
// JavaScript tensors cannot free memory a plan still points at.
struct LayerWeights {
  std::shared_ptr<Storage> attn_norm, wq, wk, wv, wo, bq, bk, bv, ffn_norm, w1, w3, w2;
};

// The tokens of one call and the cache they read and write.
struct LayerIO {
  void* x;                // [n, dim], updated in place
  size_t n;
  const int32_t* pos;     // [n] absolute positions
  const int32_t* slots;   // [n] distinct cache slots their K/V go to
  void* k_cache;          // [cache_rows, n_kv_heads, head_dim]
  void* v_cache;
  const int32_t* kpos;    // [nk] positions of cache slots [0, nk)
  size_t nk;              // filled slots attended over
};

class Plan {
 public:
  Plan(const Dims& d, std::vector<LayerWeights> layers, std::shared_ptr<Storage> inv_freq);
  const Dims& dims() const { return d_; }
  size_t layers() const { return layers_.size(); }
  void run_layer(size_t l, const LayerIO& io, cuda::Stream stream);
  // Only the layer's K/V of the tokens (norm, K and V projections, RoPE on K) into their cache
  // slots; x is read, not updated. What a KV-deviation check needs from tokens that will not go on.
  void run_kv(size_t l, const LayerIO& io, cuda::Stream stream);

 private:
  void* scratch(size_t i, size_t bytes);
  void attend_cuda(const LayerIO& io, void* q, void* k, void* v, void* att, cuda::Stream st);
  bool run_fused_decode(const LayerWeights& w, const LayerIO& io, void* q, void* k, void* v, void* att, void* g,
                        cuda::Stream st);
  Dims d_;
  std::vector<LayerWeights> layers_;
  std::shared_ptr<Storage> inv_freq_;
  std::vector<std::shared_ptr<Storage>> scratch_;
};

}  // namespace kv::engine
