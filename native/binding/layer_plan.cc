// The native layer plan (native/engine/layer.h): created once per model with its weights, then
// run once per layer and call. Every buffer is size-checked here, as for the single ops.
#include <string>
#include <vector>

#include "../core/status.h"
#include "../engine/layer.h"
#include "errors.h"
#include "exports.h"
#include "op_args.h"

namespace kv::binding {
namespace {

const napi_type_tag kPlanTag = {0x6b766c6162535452ull, 0x0000000000000003ull};

size_t dim_of(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 1 || v.As<Napi::Number>().DoubleValue() > 1e9)
    fail(Code::Arg, std::string("layerPlanCreate: dims.") + key + " must be a positive integer");
  return static_cast<size_t>(v.As<Napi::Number>().DoubleValue());
}

// layerPlanCreate(dims, layers: (handle | null)[12][], invFreq) -> plan
// dims: {dim, hidden, nHeads, nKvHeads, headDim, eps, scale, dtype}; the 12 weights of a layer are
// attnNorm, wq, wk, wv, wo, bq, bk, bv, ffnNorm, w1, w3, w2 (biases may be null).
Napi::Value plan_create(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "layerPlanCreate";
    if (!info[0].IsObject() || !info[1].IsArray()) fail(Code::Arg, "layerPlanCreate: expected (dims, layers, invFreq)");
    Napi::Object o = info[0].As<Napi::Object>();
    engine::Dims d{};
    d.dim = dim_of(o, "dim");
    d.hidden = dim_of(o, "hidden");
    d.n_heads = dim_of(o, "nHeads");
    d.n_kv_heads = dim_of(o, "nKvHeads");
    d.head_dim = dim_of(o, "headDim");
    if (d.n_heads % d.n_kv_heads || d.head_dim % 2) fail(Code::Shape, "layerPlanCreate: bad head counts or odd head_dim");
    d.eps = o.Get("eps").As<Napi::Number>().FloatValue();
    d.scale = o.Get("scale").As<Napi::Number>().FloatValue();
    d.dtype = dtype_from_int(o.Get("dtype").As<Napi::Number>().Int32Value());
    d.fused_decode = !o.Has("fusedDecode") || !o.Get("fusedDecode").IsBoolean() || o.Get("fusedDecode").As<Napi::Boolean>().Value();
    const size_t es = dtype_size(d.dtype), D = d.dim, F = d.hidden;
    const size_t qd = d.n_heads * d.head_dim, kvd = d.n_kv_heads * d.head_dim;
    Buf inv = arg_buf(info, 2, fn, "invFreq", mul(fn, {d.head_dim / 2, 4}));
    d.device = inv.s->device;
    const size_t need[12] = {D * es, qd * D * es, kvd * D * es, kvd * D * es, D * qd * es, qd * es, kvd * es, kvd * es,
                             D * es, F * D * es, F * D * es, D * F * es};
    const bool optional[12] = {false, false, false, false, false, true, true, true, false, false, false, false};
    Napi::Array layers = info[1].As<Napi::Array>();
    std::vector<engine::LayerWeights> ws;
    for (uint32_t l = 0; l < layers.Length(); ++l) {
      Napi::Value row = layers.Get(l);
      if (!row.IsArray() || row.As<Napi::Array>().Length() != 12)
        fail(Code::Arg, "layerPlanCreate: layer " + std::to_string(l) + " must list 12 weights");
      std::shared_ptr<Storage> s[12];
      for (uint32_t i = 0; i < 12; ++i) {
        Napi::Value v = row.As<Napi::Array>().Get(i);
        if (v.IsNull() || v.IsUndefined()) {
          if (!optional[i]) fail(Code::Arg, "layerPlanCreate: layer " + std::to_string(l) + " weight " + std::to_string(i) + " is missing");
          continue;
        }
        StorageHandle* h = nullptr;
        bool ok = false;
        if (v.IsExternal()) napi_check_object_type_tag(info.Env(), v, &storage_tag(), &ok);
        if (!ok) fail(Code::Arg, "layerPlanCreate: layer " + std::to_string(l) + " weight " + std::to_string(i) + " is not a storage");
        h = v.As<Napi::External<StorageHandle>>().Data();
        if (!h->storage) fail(Code::Disposed, "layerPlanCreate: a weight of layer " + std::to_string(l) + " was disposed");
        if (h->storage->bytes < need[i] || h->storage->device != d.device)
          fail(Code::Shape, "layerPlanCreate: layer " + std::to_string(l) + " weight " + std::to_string(i) +
                                " has the wrong size or device");
        s[i] = h->storage;
      }
      ws.push_back({s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], s[10], s[11]});
    }
    auto* plan = new engine::Plan(d, std::move(ws), inv.s);
    auto ext = Napi::External<engine::Plan>::New(info.Env(), plan, [](Napi::Env, engine::Plan* p) { delete p; });
    napi_type_tag_object(info.Env(), ext, &kPlanTag);
    return ext;
  });
}

// layerPlanRun(plan, layer, x, n, pos, slots, kCache, vCache, cacheRows, kpos, nk, stream?, kvOnly?)
// kvOnly: only the tokens' K/V into the cache (Plan::run_kv), x untouched.
Napi::Value plan_run(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* fn = "layerPlanRun";
    bool ok = false;
    if (info[0].IsExternal()) napi_check_object_type_tag(info.Env(), info[0], &kPlanTag, &ok);
    if (!ok) fail(Code::Arg, "layerPlanRun: argument 'plan': expected a kvlab layer plan");
    engine::Plan* plan = info[0].As<Napi::External<engine::Plan>>().Data();
    const engine::Dims& d = plan->dims();
    const size_t es = dtype_size(d.dtype), kvd = d.n_kv_heads * d.head_dim;
    size_t l = arg_size(info, 1, fn, "layer"), n = arg_size(info, 3, fn, "n");
    size_t rows = arg_size(info, 8, fn, "cacheRows"), nk = arg_size(info, 10, fn, "nk");
    if (nk > rows) fail(Code::Shape, "layerPlanRun: nk exceeds the cache rows");
    Buf x = arg_buf(info, 2, fn, "x", mul(fn, {n, d.dim, es}));
    Buf pos = arg_buf(info, 4, fn, "pos", mul(fn, {n, 4}));
    Buf slots = arg_buf(info, 5, fn, "slots", mul(fn, {n, 4}));
    Buf kc = arg_buf(info, 6, fn, "kCache", mul(fn, {rows, kvd, es}));
    Buf vc = arg_buf(info, 7, fn, "vCache", mul(fn, {rows, kvd, es}));
    Buf kpos = arg_buf(info, 9, fn, "kpos", mul(fn, {nk, 4}));
    StreamHandle* st = arg_stream_or_null(info, 11, fn);
    int dev = common_device(fn, {&x, &pos, &slots, &kc, &vc, &kpos}, st);
    if (dev != d.device) fail(Code::Device, "layerPlanRun: tensors are not on the plan's device");
    if (x.s->device == kHost && d.dtype != DType::F32) require_cpu_f32(fn, d.dtype);
    check_indices(fn, slots, n, nk, true);  // the slots written must be among the attended ones
    const bool kv_only = info.Length() > 12 && info[12].IsBoolean() && info[12].As<Napi::Boolean>().Value();
    const engine::LayerIO io{x.ptr(), n, pos.ptr<int32_t>(), slots.ptr<int32_t>(), kc.ptr(), vc.ptr(), kpos.ptr<int32_t>(), nk};
    if (kv_only)
      plan->run_kv(l, io, st ? st->stream : nullptr);
    else
      plan->run_layer(l, io, st ? st->stream : nullptr);
    return info.Env().Undefined();
  });
}

}  // namespace

void export_layer_plan(Napi::Env env, Napi::Object exports) {
  exports.Set("layerPlanCreate", Napi::Function::New(env, plan_create, "layerPlanCreate"));
  exports.Set("layerPlanRun", Napi::Function::New(env, plan_run, "layerPlanRun"));
}

}  // namespace kv::binding
