// Model op entry points (native/cpu/ops.h and native/cuda/ops.h): check every buffer's size and
// device, then run the C++ reference (host) or queue the CUDA kernel (device).
#include <cmath>
#include <string>
#include <vector>

#include "../core/status.h"
#include "../cpu/ops.h"
#include "../cuda/ops.h"
#include "errors.h"
#include "exports.h"
#include "op_args.h"

namespace kv::binding {
namespace {

cuda::Stream stream_of(const StreamHandle* h) { return h ? h->stream : nullptr; }

// embedding(ids, n, table, tableDtype, vocab, dim, out, outDtype, stream?)
Napi::Value embedding(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "embedding";
    size_t n = arg_size(info, 1, fn, "n");
    DType tt = arg_dtype(info, 3, fn, "tableDtype");
    size_t vocab = arg_size(info, 4, fn, "vocab"), dim = arg_size(info, 5, fn, "dim");
    DType ot = arg_dtype(info, 7, fn, "outDtype");
    Buf ids = arg_buf(info, 0, fn, "ids", mul(fn, {n, 4}));
    Buf table = arg_buf(info, 2, fn, "table", mul(fn, {vocab, dim, dtype_size(tt)}));
    Buf out = arg_buf(info, 6, fn, "out", mul(fn, {n, dim, dtype_size(ot)}));
    StreamHandle* st = arg_stream_or_null(info, 8, fn);
    int dev = common_device(fn, {&ids, &table, &out}, st);
    check_indices(fn, ids, n, vocab, false);
    if (dev == kHost) {
      require_cpu_f32(fn, tt);
      require_cpu_f32(fn, ot);
      cpu::embedding(ids.ptr<int32_t>(), n, table.ptr<float>(), dim, out.ptr<float>());
    } else {
      require_float(fn, tt);
      require_float(fn, ot);
      cuda::embedding(dev, ids.ptr<int32_t>(), n, table.ptr(), tt, dim, out.ptr(), ot, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// rmsnorm(x, w, out, dtype, n, dim, eps, stream?)
Napi::Value rmsnorm(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "rmsnorm";
    DType t = arg_dtype(info, 3, fn, "dtype");
    size_t n = arg_size(info, 4, fn, "n"), dim = arg_size(info, 5, fn, "dim");
    float eps = arg_float(info, 6, fn, "eps");
    size_t es = dtype_size(t);
    Buf x = arg_buf(info, 0, fn, "x", mul(fn, {n, dim, es}));
    Buf w = arg_buf(info, 1, fn, "w", mul(fn, {dim, es}));
    Buf out = arg_buf(info, 2, fn, "out", mul(fn, {n, dim, es}));
    StreamHandle* st = arg_stream_or_null(info, 7, fn);
    int dev = common_device(fn, {&x, &w, &out}, st);
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      cpu::rmsnorm(x.ptr<float>(), w.ptr<float>(), out.ptr<float>(), n, dim, eps);
    } else {
      require_float(fn, t);
      cuda::rmsnorm(dev, x.ptr(), w.ptr(), out.ptr(), t, n, dim, eps, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// matmul(x, w, bias|null, out, dtype, n, k, m, stream?): out[n,m] = x[n,k] w[m,k]^T (+ bias)
Napi::Value matmul(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "matmul";
    DType t = arg_dtype(info, 4, fn, "dtype");
    size_t n = arg_size(info, 5, fn, "n"), k = arg_size(info, 6, fn, "k"), m = arg_size(info, 7, fn, "m");
    size_t es = dtype_size(t);
    Buf x = arg_buf(info, 0, fn, "x", mul(fn, {n, k, es}));
    Buf w = arg_buf(info, 1, fn, "w", mul(fn, {m, k, es}));
    Buf bias = arg_buf_or_null(info, 2, fn, "bias", mul(fn, {m, es}));
    Buf out = arg_buf(info, 3, fn, "out", mul(fn, {n, m, es}));
    StreamHandle* st = arg_stream_or_null(info, 8, fn);
    int dev = common_device(fn, {&x, &w, &bias, &out}, st);
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      cpu::matmul(x.ptr<float>(), w.ptr<float>(), bias.ptr<float>(), out.ptr<float>(), n, k, m);
    } else {
      require_float(fn, t);
      cuda::matmul(dev, x.ptr(), w.ptr(), bias.ptr(), out.ptr(), t, n, k, m, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// rope(x, dtype, pos, invFreq, n, heads, headDim, stream?) in place
Napi::Value rope(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "rope";
    DType t = arg_dtype(info, 1, fn, "dtype");
    size_t n = arg_size(info, 4, fn, "n"), heads = arg_size(info, 5, fn, "heads"), hd = arg_size(info, 6, fn, "headDim");
    if (hd % 2) fail(Code::Shape, "rope: headDim must be even, got " + std::to_string(hd));
    Buf x = arg_buf(info, 0, fn, "x", mul(fn, {n, heads, hd, dtype_size(t)}));
    Buf pos = arg_buf(info, 2, fn, "pos", mul(fn, {n, 4}));
    Buf inv = arg_buf(info, 3, fn, "invFreq", mul(fn, {hd / 2, 4}));
    StreamHandle* st = arg_stream_or_null(info, 7, fn);
    int dev = common_device(fn, {&x, &pos, &inv}, st);
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      cpu::rope(x.ptr<float>(), pos.ptr<int32_t>(), inv.ptr<float>(), n, heads, hd);
    } else {
      require_float(fn, t);
      cuda::rope(dev, x.ptr(), t, pos.ptr<int32_t>(), inv.ptr<float>(), n, heads, hd, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// attention(q, k, v, dtype, qpos, kpos, out, nq, nk, hq, hkv, d, scale, stream?)
Napi::Value attention(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "attention";
    DType t = arg_dtype(info, 3, fn, "dtype");
    size_t nq = arg_size(info, 7, fn, "nq"), nk = arg_size(info, 8, fn, "nk");
    size_t hq = arg_size(info, 9, fn, "hq"), hkv = arg_size(info, 10, fn, "hkv"), d = arg_size(info, 11, fn, "d");
    float scale = arg_float(info, 12, fn, "scale");
    if (hkv == 0 || hq % hkv) fail(Code::Shape, "attention: query heads " + std::to_string(hq) +
                                                  " must be a multiple of kv heads " + std::to_string(hkv));
    size_t es = dtype_size(t);
    Buf q = arg_buf(info, 0, fn, "q", mul(fn, {nq, hq, d, es}));
    Buf k = arg_buf(info, 1, fn, "k", mul(fn, {nk, hkv, d, es}));
    Buf v = arg_buf(info, 2, fn, "v", mul(fn, {nk, hkv, d, es}));
    Buf qpos = arg_buf(info, 4, fn, "qpos", mul(fn, {nq, 4}));
    Buf kpos = arg_buf(info, 5, fn, "kpos", mul(fn, {nk, 4}));
    Buf out = arg_buf(info, 6, fn, "out", mul(fn, {nq, hq, d, es}));
    StreamHandle* st = arg_stream_or_null(info, 13, fn);
    int dev = common_device(fn, {&q, &k, &v, &qpos, &kpos, &out}, st);
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      cpu::attention(q.ptr<float>(), k.ptr<float>(), v.ptr<float>(), qpos.ptr<int32_t>(), kpos.ptr<int32_t>(),
                     out.ptr<float>(), nq, nk, hq, hkv, d, scale);
    } else {
      require_float(fn, t);
      cuda::attention(dev, q.ptr(), k.ptr(), v.ptr(), t, qpos.ptr<int32_t>(), kpos.ptr<int32_t>(), out.ptr(), nq, nk,
                      hq, hkv, d, scale, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// attentionMass(q, k, dtype, qpos, kpos, out, nq, nk, hq, hkv, d, scale, stream?): out[j] = sum over queries i and
// heads h of softmax_j(scale q_ih . k_jg) over the keys with kpos[j] <= qpos[i]; out is f32 [nk]. q and k may be
// f32, f16 or bf16 on either device (the C++ op reads 16-bit values as they are).
Napi::Value attention_mass(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "attentionMass";
    DType t = arg_dtype(info, 2, fn, "dtype");
    size_t nq = arg_size(info, 6, fn, "nq"), nk = arg_size(info, 7, fn, "nk");
    size_t hq = arg_size(info, 8, fn, "hq"), hkv = arg_size(info, 9, fn, "hkv"), d = arg_size(info, 10, fn, "d");
    float scale = arg_float(info, 11, fn, "scale");
    if (hq == 0 || hkv == 0 || d == 0 || hq % hkv)
      fail(Code::Arg, "attentionMass: heads " + std::to_string(hq) + ", kv heads " + std::to_string(hkv) + " and head dim " +
                          std::to_string(d) + " must be positive, with heads a multiple of kv heads");
    if (!(std::isfinite(scale) && scale > 0.0f)) fail(Code::Arg, "attentionMass: scale must be finite and > 0, got " + std::to_string(scale));
    require_float(fn, t);
    size_t es = dtype_size(t);
    Buf q = arg_buf(info, 0, fn, "q", mul(fn, {nq, hq, d, es}));
    Buf k = arg_buf(info, 1, fn, "k", mul(fn, {nk, hkv, d, es}));
    Buf qpos = arg_buf(info, 3, fn, "qpos", mul(fn, {nq, 4}));
    Buf kpos = arg_buf(info, 4, fn, "kpos", mul(fn, {nk, 4}));
    Buf out = arg_buf(info, 5, fn, "out", mul(fn, {nk, 4}));
    StreamHandle* st = arg_stream_or_null(info, 12, fn);
    int dev = common_device(fn, {&q, &k, &qpos, &kpos, &out}, st);
    if (dev == kHost) {
      cpu::attention_mass(q.ptr(), k.ptr(), t, qpos.ptr<int32_t>(), kpos.ptr<int32_t>(), out.ptr<float>(), nq, nk, hq, hkv,
                          d, scale);
    } else {
      cuda::attention_mass(dev, q.ptr(), k.ptr(), t, qpos.ptr<int32_t>(), kpos.ptr<int32_t>(), out.ptr<float>(), nq, nk, hq,
                           hkv, d, scale, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// swiglu(gate, up, out, dtype, n, stream?) and add(a, b, out, dtype, n, stream?)
template <bool kSwiglu>
Napi::Value binary(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = kSwiglu ? "swiglu" : "add";
    DType t = arg_dtype(info, 3, fn, "dtype");
    size_t n = arg_size(info, 4, fn, "n");
    size_t bytes = mul(fn, {n, dtype_size(t)});
    Buf a = arg_buf(info, 0, fn, "a", bytes), b = arg_buf(info, 1, fn, "b", bytes), out = arg_buf(info, 2, fn, "out", bytes);
    StreamHandle* st = arg_stream_or_null(info, 5, fn);
    int dev = common_device(fn, {&a, &b, &out}, st);
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      if (kSwiglu) cpu::swiglu(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n);
      else cpu::add(a.ptr<float>(), b.ptr<float>(), out.ptr<float>(), n);
    } else {
      require_float(fn, t);
      if (kSwiglu) cuda::swiglu(dev, a.ptr(), b.ptr(), out.ptr(), t, n, stream_of(st));
      else cuda::add(dev, a.ptr(), b.ptr(), out.ptr(), t, n, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// rowSqDiff(a, b, out, dtype, n, w, accumulate, stream?, bRows?, bRowCount?): out[r] (+)= sum_c (a[r, c] - b[R, c])^2
// with R = bRows[r] (i32 [n], each < bRowCount) or r; out is f32 [n]
Napi::Value row_sq_diff(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "rowSqDiff";
    DType t = arg_dtype(info, 3, fn, "dtype");
    size_t n = arg_size(info, 4, fn, "n"), w = arg_size(info, 5, fn, "w");
    bool accumulate = arg_bool(info, 6, fn, "accumulate");
    const bool indexed = info.Length() > 8 && !info[8].IsUndefined() && !info[8].IsNull();
    const size_t b_count = indexed ? arg_size(info, 9, fn, "bRowCount") : n;
    Buf a = arg_buf(info, 0, fn, "a", mul(fn, {n, w, dtype_size(t)}));
    Buf b = arg_buf(info, 1, fn, "b", mul(fn, {b_count, w, dtype_size(t)}));
    Buf out = arg_buf(info, 2, fn, "out", mul(fn, {n, 4}));
    StreamHandle* st = arg_stream_or_null(info, 7, fn);
    Buf rows = indexed ? arg_buf(info, 8, fn, "bRows", mul(fn, {n, 4})) : Buf{};
    int dev = common_device(fn, {&a, &b, &out, &rows}, st);
    if (indexed) check_indices(fn, rows, n, b_count, false);
    const int32_t* r = indexed ? rows.ptr<int32_t>() : nullptr;
    if (dev == kHost) {
      require_cpu_f32(fn, t);
      cpu::row_sq_diff(a.ptr<float>(), b.ptr<float>(), r, out.ptr<float>(), n, w, accumulate);
    } else {
      require_float(fn, t);
      cuda::row_sq_diff(dev, a.ptr(), b.ptr(), r, out.ptr<float>(), t, n, w, accumulate, stream_of(st));
    }
    return info.Env().Undefined();
  });
}

// topKRows(v, n, k, out, stream?): out[0..k) = rows of the k largest of the f32 v[0..n), ties to the lower row, ascending
Napi::Value top_k_rows(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "topKRows";
    size_t n = arg_size(info, 1, fn, "n"), k = arg_size(info, 2, fn, "k");
    if (k > n) fail(Code::Arg, std::string(fn) + ": k = " + std::to_string(k) + " exceeds n = " + std::to_string(n));
    if (n > 0x7fffffffu) fail(Code::Arg, std::string(fn) + ": n too large");
    Buf v = arg_buf(info, 0, fn, "v", mul(fn, {n, 4}));
    Buf out = arg_buf(info, 3, fn, "out", mul(fn, {k, 4}));
    StreamHandle* st = arg_stream_or_null(info, 4, fn);
    int dev = common_device(fn, {&v, &out}, st);
    if (dev == kHost) cpu::top_k_rows(v.ptr<float>(), n, k, out.ptr<int32_t>());
    else cuda::top_k_rows(dev, v.ptr<float>(), n, k, out.ptr<int32_t>(), stream_of(st));
    return info.Env().Undefined();
  });
}

// gatherRows(src, srcRows, idx, dst, n, widthBytes, stream?): dst[i] = src[idx[i]]
// scatterRows(src, idx, dst, dstRows, n, widthBytes, stream?): dst[idx[i]] = src[i] (indices unique)
Napi::Value gather_rows(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "gatherRows";
    size_t rows = arg_size(info, 1, fn, "srcRows"), n = arg_size(info, 4, fn, "n"), w = arg_size(info, 5, fn, "widthBytes");
    Buf src = arg_buf(info, 0, fn, "src", mul(fn, {rows, w}));
    Buf idx = arg_buf(info, 2, fn, "idx", mul(fn, {n, 4}));
    Buf dst = arg_buf(info, 3, fn, "dst", mul(fn, {n, w}));
    StreamHandle* st = arg_stream_or_null(info, 6, fn);
    int dev = common_device(fn, {&src, &idx, &dst}, st);
    check_indices(fn, idx, n, rows, false);
    if (dev == kHost) cpu::gather_rows(src.ptr(), idx.ptr<int32_t>(), dst.ptr(), n, w);
    else cuda::gather_rows(dev, src.ptr(), idx.ptr<int32_t>(), dst.ptr(), n, w, stream_of(st));
    return info.Env().Undefined();
  });
}

Napi::Value scatter_rows(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "scatterRows";
    size_t rows = arg_size(info, 3, fn, "dstRows"), n = arg_size(info, 4, fn, "n"), w = arg_size(info, 5, fn, "widthBytes");
    Buf src = arg_buf(info, 0, fn, "src", mul(fn, {n, w}));
    Buf idx = arg_buf(info, 1, fn, "idx", mul(fn, {n, 4}));
    Buf dst = arg_buf(info, 2, fn, "dst", mul(fn, {rows, w}));
    StreamHandle* st = arg_stream_or_null(info, 6, fn);
    int dev = common_device(fn, {&src, &idx, &dst}, st);
    check_indices(fn, idx, n, rows, true);
    if (dev == kHost) cpu::scatter_rows(src.ptr(), idx.ptr<int32_t>(), dst.ptr(), n, w);
    else cuda::scatter_rows(dev, src.ptr(), idx.ptr<int32_t>(), dst.ptr(), n, w, stream_of(st));
    return info.Env().Undefined();
  });
}

// sample(logits, vocab, temperature, topP, u, scratch|null, stream?, queued?) -> id. logits is f32.
// On a device the id is written to `scratch` (one i32 on the device) and copied back
// (synchronising), or, with `queued`, left there for the next step's embedding (returns -1).
Napi::Value sample(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "sample";
    size_t vocab = arg_size(info, 1, fn, "vocab");
    if (vocab == 0) fail(Code::Shape, "sample: empty logits");
    float temp = arg_float(info, 2, fn, "temperature");
    float top_p = arg_float(info, 3, fn, "topP");
    float u = arg_float(info, 4, fn, "u");
    if (!(u >= 0.0f && u < 1.0f)) fail(Code::Arg, "sample: u must be in [0, 1)");
    if (!(top_p > 0.0f && top_p <= 1.0f)) fail(Code::Arg, "sample: topP must be in (0, 1]");
    Buf logits = arg_buf(info, 0, fn, "logits", mul(fn, {vocab, 4}));
    Buf scratch = arg_buf_or_null(info, 5, fn, "scratch", 4);
    StreamHandle* st = arg_stream_or_null(info, 6, fn);
    int dev = common_device(fn, {&logits, &scratch}, st);
    int32_t id;
    if (dev == kHost) {
      id = cpu::sample(logits.ptr<float>(), vocab, temp, top_p, u);
    } else {
      if (!scratch.s) fail(Code::Arg, "sample: a device scratch buffer is required for device logits");
      cuda::sample(dev, logits.ptr<float>(), vocab, temp, top_p, u, scratch.ptr<int32_t>(), stream_of(st));
      if (info.Length() > 7 && arg_bool(info, 7, fn, "queued")) return Napi::Number::New(info.Env(), -1);
      if (st) cuda::stream_synchronize(dev, st->stream);
      cuda::memcpy(&id, kHost, scratch.ptr(), dev, 4, nullptr, false);
    }
    return Napi::Number::New(info.Env(), id);
  });
}

}  // namespace

void export_model_ops(Napi::Env env, Napi::Object exports) {
  exports.Set("embedding", Napi::Function::New(env, embedding, "embedding"));
  exports.Set("rmsnorm", Napi::Function::New(env, rmsnorm, "rmsnorm"));
  exports.Set("matmul", Napi::Function::New(env, matmul, "matmul"));
  exports.Set("rope", Napi::Function::New(env, rope, "rope"));
  exports.Set("attention", Napi::Function::New(env, attention, "attention"));
  exports.Set("attentionMass", Napi::Function::New(env, attention_mass, "attentionMass"));
  exports.Set("swiglu", Napi::Function::New(env, binary<true>, "swiglu"));
  exports.Set("add", Napi::Function::New(env, binary<false>, "add"));
  exports.Set("rowSqDiff", Napi::Function::New(env, row_sq_diff, "rowSqDiff"));
  exports.Set("topKRows", Napi::Function::New(env, top_k_rows, "topKRows"));
  exports.Set("gatherRows", Napi::Function::New(env, gather_rows, "gatherRows"));
  exports.Set("scatterRows", Napi::Function::New(env, scatter_rows, "scatterRows"));
  exports.Set("sample", Napi::Function::New(env, sample, "sample"));
}

}  // namespace kv::binding
