// CacheBlend's gates on CUDA (f32): ratio 1.0 reproduces full prefill (<= 1e-5) and full reuse equals
// the re-positioned chunks concatenated, for llama, llama3-scaled, mistral and qwen2 (bias) configs;
// cacheblend at 0.15 lands between full reuse and full prefill in KL. The pipelined fusor with chunk
// KV in pinned host memory, copied layer by layer on a copy stream, gives the in-memory fuse's logits.
// The query-attention pre-pass (ops.attentionMass on the device) gives the CPU pre-pass's masses.
import * as assert from 'uvu/assert';
import { fuse, fusePipelined, hostLayerSource, makeChunk, makePolicy, meanKL, precomputeChunks, queryAttentionMass } from '../../src/cacheblend/index.js';
import * as ops from '../../src/runtime/ops.js';
import { Tensor } from '../../src/runtime/tensor.js';
import { hostSelecting } from '../support/host-select.js';
import { Stream } from '../../src/runtime/stream.js';
import type { ModelConfig } from '../../src/model/config.js';
import { Model } from '../../src/model/model.js';
import { gpuSuite } from '../support/gpu.js';
import { relErr, rng } from '../support/reference.js';
import { concatenatedLogits } from '../support/cacheblend.js';

const test = gpuSuite('gpu cacheblend');

const base: ModelConfig = {
  architecture: 'llama', dim: 256, hiddenDim: 512, nLayers: 4, nHeads: 8, nKvHeads: 2, headDim: 32, vocabSize: 500,
  maxSeqLen: 2048, normEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, qkvBias: false, bosId: 1, eosId: 2,
};
const CONFIGS: Record<string, ModelConfig> = {
  llama: base,
  'llama3-scaled': { ...base, ropeTheta: 500000, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 128 } },
  mistral: { ...base, architecture: 'mistral', ropeTheta: 1e6 },
  'qwen2-bias': { ...base, architecture: 'qwen2', qkvBias: true, nKvHeads: 1, tiedEmbeddings: true },
};

const tokens = (n: number, seed: number, vocab: number) => {
  const u = rng(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(u() * (vocab - 3)));
};


test('ratio-1.0 and full-reuse gates on CUDA for llama, llama3-scaled, mistral, qwen2', () => {
  for (const [name, cfg] of Object.entries(CONFIGS)) {
    const m = Model.random(cfg, { seed: 7, device: 'cuda:0', dtype: 'f32' });
    const parts = [67, 45, 90, 33].map((n, i) => tokens(n, 10 + i, cfg.vocabSize));
    const query = tokens(9, 99, cfg.vocabSize);
    const cs = precomputeChunks(m, [1], parts);
    const ex = m.prefill([1, ...parts.flat(), ...query], { logits: 'all' });
    const exact = ex.logits.slice(ex.logits.length - query.length * cfg.vocabSize);
    ex.cache.dispose();
    const full = fuse(m, { prefix: [1], chunks: cs, query, policy: 'full-recompute' });
    const e1 = relErr(full.logits, exact);
    const reuse = fuse(m, { prefix: [1], chunks: cs, query, policy: 'full-reuse' });
    const e2 = relErr(reuse.logits, concatenatedLogits(m, [1], cs, query));
    console.log(`  ${name}: ratio 1.0 vs full prefill ${e1.toExponential(2)}; full reuse vs concatenation ${e2.toExponential(2)}`);
    assert.ok(e1 <= 1e-5, `${name} ratio 1.0: ${e1}`);
    assert.ok(e2 <= 1e-5, `${name} full reuse: ${e2}`);
    const blend = fuse(m, { prefix: [1], chunks: cs, query, policy: 'cacheblend', ratio: 0.15 });
    const V = cfg.vocabSize;
    const kl = (l: Float32Array) => meanKL(exact, l, V);
    console.log(`  ${name}: KL full reuse ${kl(reuse.logits).toExponential(2)}, cacheblend 0.15 ${kl(blend.logits).toExponential(2)}`);
    assert.ok(kl(blend.logits) <= kl(reuse.logits));
    for (const r of [full, reuse, blend]) r.cache.dispose();
    for (const c of cs) c.dispose();
    m.dispose();
  }
});

test('pipelined fusor from pinned host memory on a copy stream = fuse with the KV on the device', async () => {
  const m = Model.random(base, { seed: 3, device: 'cuda:0', dtype: 'bf16' });
  const parts = [120, 77, 96].map((n, i) => tokens(n, 30 + i, base.vocabSize));
  const query = tokens(11, 98, base.vocabSize);
  const cs = precomputeChunks(m, [1], parts);
  const host = cs.map((c) => makeChunk(c.tokens, c.kv.to('cpu', { pinned: true }), c.positions, c.fingerprint));
  const copy = Stream.create('cuda:0');
  for (const [policy, ratio] of [['full-reuse', 0], ['cacheblend', 0.15], ['epic', 0.15]] as const) {
    const ref = fuse(m, { prefix: [1], chunks: cs, query, policy, ratio });
    const got = await fusePipelined(m, { prefix: [1], query, policy, ratio,
      chunks: host.map((c) => ({ tokens: c.tokens, positions: c.positions, fingerprint: c.fingerprint, source: hostLayerSource(c, 'cuda:0', copy) })) });
    const e = relErr(got.logits, ref.logits);
    console.log(`  pipelined ${policy}: relative error vs fuse ${e.toExponential(2)}; load wait ${got.loadWaitMs.reduce((a, b) => a + b, 0).toFixed(2)} ms`);
    assert.is(e, 0, `${policy}: pipelined and in-memory fusion must run the same kernels on the same data`);
    for (const r of [ref, got]) r.cache.dispose();
  }
  copy.dispose();
  for (const c of [...cs, ...host]) c.dispose();
  m.dispose();
});


test('topKRows on CUDA = on the CPU (ties, k from 0 to n, n up to 70000)', () => {
  const u = rng(11);
  for (const n of [1, 1000, 3072, 70000]) {
    const vals = Float32Array.from({ length: n }, () => Math.floor(u() * 50) / 8);
    const vc = Tensor.fromTypedArray(vals), vg = vc.to('cuda:0');
    for (const k of [0, 1, Math.floor(n * 0.15), n - 1, n].filter((k) => k >= 0 && k <= n)) {
      const oc = Tensor.empty([k], { dtype: 'i32' }), og = Tensor.empty([k], { dtype: 'i32', device: 'cuda:0' });
      ops.topKRows(vc, k, oc);
      ops.topKRows(vg, k, og);
      assert.equal(Array.from(og.toTypedArray() as Int32Array), Array.from(oc.toTypedArray() as Int32Array), `n ${n} k ${k}`);
      oc.dispose();
      og.dispose();
    }
    vc.dispose();
    vg.dispose();
  }
});

test('cacheblend on CUDA: selection on the device = on the host (sets, logits)', () => {
  const cfg = CONFIGS.llama!;
  const m = Model.random(cfg, { seed: 3, device: 'cuda:0', dtype: 'f32' });
  const parts = [80, 64, 96, 72].map((n, i) => tokens(n, 30 + i, cfg.vocabSize));
  const query = tokens(12, 77, cfg.vocabSize);
  const cs = precomputeChunks(m, [1], parts);
  for (const ratio of [0.1, 0.15]) {
    const p = makePolicy('cacheblend', { ratio });
    const dev = fuse(m, { prefix: [1], chunks: cs, query, policy: p });
    const host = fuse(m, { prefix: [1], chunks: cs, query, policy: hostSelecting(p) });
    assert.equal(dev.selected.map((s) => Array.from(s)), host.selected.map((s) => Array.from(s)), `sets at ${ratio}`);
    assert.equal(relErr(dev.logits, host.logits), 0, `logits at ${ratio}`);
    for (const r of [dev, host]) r.cache.dispose();
  }
  for (const c of cs) c.dispose();
  m.dispose();
});

test('query-attention on CUDA: the pre-pass masses of the CPU pre-pass (f32), bf16 too; the policy fuses on the device', () => {
  const cfg = CONFIGS.llama!, L = cfg.nLayers, H = cfg.nHeads;
  const P = 1, N = 400, Q = 13;
  const ctx = tokens(N, 60, cfg.vocabSize), query = tokens(Q, 61, cfg.vocabSize);
  const masses = (device: string, dtype: 'f32' | 'bf16') => {
    const m = Model.random(cfg, { seed: 5, device, dtype });
    const cache = m.newCache(P + N + Q);
    m.prefill([1, ...ctx], { past: cache, logits: 'none' });
    const r = queryAttentionMass(m, cache, P, N, Int32Array.from(query), L - 1, 1);
    assert.is(cache.length, P + N, 'the pre-pass leaves prefix + context');
    cache.dispose();
    m.dispose();
    return r;
  };
  const cpu = masses('cpu', 'f32'), gpu = masses('cuda:0', 'f32'), bf = masses('cuda:0', 'bf16');
  assert.is(gpu.length, L - 2);
  for (let l = 0; l < gpu.length; l++) {
    const e = relErr(gpu[l]!, cpu[l]!), eb = relErr(bf[l]!, cpu[l]!);
    console.log(`  query-attention layer ${l + 1}: mass CUDA f32 vs CPU ${e.toExponential(2)}, CUDA bf16 vs CPU ${eb.toExponential(2)}`);
    assert.ok(e <= 1e-4, `layer ${l + 1}: f32 masses ${e}`);
    for (const m of [gpu[l]!, bf[l]!]) {
      const total = m.reduce((a, b) => a + b, 0);
      assert.ok(total > 0 && total < Q * H, `layer ${l + 1}: context mass ${total} outside (0, ${Q * H})`);
    }
  }
  const m = Model.random(cfg, { seed: 5, device: 'cuda:0', dtype: 'bf16' });
  const parts = [150, 130, 120].map((n, i) => tokens(n, 62 + i, cfg.vocabSize));
  const cs = precomputeChunks(m, [1], parts);
  const r = fuse(m, { prefix: [1], chunks: cs, query, policy: 'query-attention', ratio: 0.15 });
  assert.is(r.selected[0]!.length, Math.round(0.15 * 400));
  assert.ok(r.logits.every(Number.isFinite), 'finite logits');
  r.cache.dispose();
  for (const c of cs) c.dispose();
  m.dispose();
});

test.run();
