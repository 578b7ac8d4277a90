// CacheBlend's query-attention policy on the CPU: Model.queryVectors against a plain-JS reference
// from the weights (random qwen2-style model with Q bias and GQA, odd sizes; stories260K); the
// engine's layer output rebuilt from those queries (ops.attention on the cache, then W_o and the FFN
// in JS); the pre-pass's attention mass against probabilities read out of ops.attention with
// one-hot values; and the policy's plan under the fusor's rules (one set on every layer, ratio 1 =
// full prefill, compute fraction with the pre-pass counted).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuse, fusePipelined, precomputeChunks, queryAttentionMass } from '../src/cacheblend/index.js';
import { defaultQueryLayers, grownBackwards } from '../src/cacheblend/policies.js';
import type { ModelConfig } from '../src/model/config.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ropeInvFreq } from '../src/model/rope.js';
import { expectedTensorShapes, type ModelWeights } from '../src/model/weights.js';
import { ArgumentError } from '../src/runtime/errors.js';
import * as ops from '../src/runtime/ops.js';
import { Tensor } from '../src/runtime/tensor.js';
import { STORIES_BIN } from './support/models.js';
import { relErr, rng } from './support/reference.js';

const RANDOM: ModelConfig = {
  architecture: 'qwen2', dim: 72, hiddenDim: 104, nLayers: 3, nHeads: 6, nKvHeads: 2, headDim: 12, vocabSize: 211, maxSeqLen: 256,
  normEps: 1e-5, tiedEmbeddings: false, bosId: 1, eosId: 2, ropeTheta: 1000000, ropeScaling: null, qkvBias: true,
};

function randomWeights(config: ModelConfig, seed: number): ModelWeights {
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  let i = 0;
  for (const [name, shape] of expectedTensorShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const r = rng(seed * 100 + i++);
    const u = Float32Array.from({ length: n }, () => 2 * r() - 1);
    const norm = shape.length === 1 && !/\.b[qkv]$/.test(name);
    const a = norm ? 0.1 : 1 / Math.sqrt(shape[shape.length - 1]!);
    tensors.set(name, { shape, data: Float32Array.from(u, (v) => (norm ? 1 + a * v : a * v)) });
  }
  return { config, tensors };
}

const cases: [string, ModelWeights][] = [
  ['random qwen2 (Q bias, GQA 6/2, head_dim 12)', randomWeights(RANDOM, 7)],
  ['stories260K', await loadLlama2c(STORIES_BIN)],
];

function randomTokens(n: number, seed: number, vocab: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(u() * (vocab - 3)));
}

// ---- plain-JS reference (f64) --------------------------------------------------------------------

function W(w: ModelWeights, name: string): Float32Array {
  return w.tensors.get(name)!.data;
}

function rmsnormJs(x: ArrayLike<number>, g: Float32Array, rows: number, dim: number, eps: number): Float64Array {
  const out = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[r * dim + j]! ** 2;
    const s = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[r * dim + j] = x[r * dim + j]! * s * g[j]!;
  }
  return out;
}

/** x [rows, k] w[m, k]^T (+ b). */
function matmulJs(x: ArrayLike<number>, w: Float32Array, b: Float32Array | undefined, rows: number, k: number, m: number): Float64Array {
  const out = new Float64Array(rows * m);
  for (let r = 0; r < rows; r++)
    for (let o = 0; o < m; o++) {
      let s = b ? b[o]! : 0;
      for (let j = 0; j < k; j++) s += x[r * k + j]! * w[o * k + j]!;
      out[r * m + o] = s;
    }
  return out;
}

/** RoPE, halves pairing (HF Llama): (v[i], v[i + d/2]) rotated by pos * invFreq[i]. */
function ropeJs(v: Float64Array, pos: ArrayLike<number>, heads: number, d: number, invFreq: Float32Array): void {
  const half = d / 2;
  for (let r = 0; r < pos.length; r++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const o = (r * heads + h) * d, a = v[o + i]!, b = v[o + i + half]!, t = pos[r]! * invFreq[i]!;
        v[o + i] = a * Math.cos(t) - b * Math.sin(t);
        v[o + i + half] = b * Math.cos(t) + a * Math.sin(t);
      }
}

function queryJs(w: ModelWeights, l: number, x: Float32Array, pos: number[]): Float64Array {
  const c = w.config, n = pos.length;
  const h = rmsnormJs(x, W(w, `layers.${l}.attention_norm`), n, c.dim, c.normEps);
  const q = matmulJs(h, W(w, `layers.${l}.wq`), w.tensors.get(`layers.${l}.bq`)?.data, n, c.dim, c.nHeads * c.headDim);
  ropeJs(q, pos, c.nHeads, c.headDim, ropeInvFreq(c));
  return q;
}

// ---- tests ----------------------------------------------------------------------------------------

test('queryVectors = RoPE(RMSNorm(x) W_q^T + b_q) from the weights (layers 0 and 1, odd positions)', () => {
  for (const [name, w] of cases) {
    const m = Model.fromWeights(w);
    const cache = m.newCache(64);
    const ctx = randomTokens(29, 3, m.config.vocabSize);
    m.prefill(ctx, { past: cache, logits: 'none' });
    const pos = [29, 30, 31, 32, 33];
    const batch = m.batch(pos, cache.append(pos));
    const x = m.embed(randomTokens(5, 4, m.config.vocabSize));
    for (let l = 0; l < 2; l++) {
      const q = m.queryVectors(l, x, batch);
      assert.equal(q.shape, [5, m.config.nHeads, m.config.headDim]);
      const e = relErr(q.toFloat32(), queryJs(w, l, x.toFloat32(), pos));
      assert.ok(e <= 1e-5, `${name} layer ${l}: queryVectors vs reference ${e}`);
      q.dispose();
      m.layer(l, x, batch, cache);
    }
    x.dispose(); batch.dispose(); cache.dispose(); m.dispose();
  }
});

test("the engine's layer output = attention(queryVectors, cache K/V) then W_o and the FFN in JS", () => {
  for (const [name, w] of cases) {
    const m = Model.fromWeights(w);
    const c = m.config, d = c.headDim, H = c.nHeads;
    const cache = m.newCache(64);
    m.prefill(randomTokens(31, 5, c.vocabSize), { past: cache, logits: 'none' });
    const pos = [31, 32, 33];
    const batch = m.batch(pos, cache.append(pos));
    const x = m.embed(randomTokens(3, 6, c.vocabSize));
    for (let l = 0; l < 2; l++) {
      const xin = x.toFloat32();
      const q = m.queryVectors(l, x, batch);
      m.layer(l, x, batch, cache); // writes the rows' K/V, so the attention below sees them too
      const S = cache.length;
      const k = cache.slab(l, 0).rows(0, S), v = cache.slab(l, 1).rows(0, S);
      const kpos = Tensor.fromTypedArray(cache.positions.slice(0, S));
      const att = Tensor.empty([3, H, d]);
      ops.attention(q, k, v, batch.positionsTensor, kpos, att, { queryHeads: H, kvHeads: c.nKvHeads, headDim: d, scale: 1 / Math.sqrt(d) });
      const a = att.toFloat32();
      const y = matmulJs(a, W(w, `layers.${l}.wo`), undefined, 3, H * d, c.dim).map((t, i) => t + xin[i]!);
      const n2 = rmsnormJs(y, W(w, `layers.${l}.ffn_norm`), 3, c.dim, c.normEps);
      const g = matmulJs(n2, W(w, `layers.${l}.w1`), undefined, 3, c.dim, c.hiddenDim);
      const u = matmulJs(n2, W(w, `layers.${l}.w3`), undefined, 3, c.dim, c.hiddenDim);
      const hid = g.map((t, i) => (t / (1 + Math.exp(-t))) * u[i]!);
      const z = matmulJs(hid, W(w, `layers.${l}.w2`), undefined, 3, c.hiddenDim, c.dim).map((t, i) => t + y[i]!);
      const e = relErr(x.toFloat32(), z);
      assert.ok(e <= 1e-5, `${name} layer ${l}: engine output vs rebuilt ${e}`);
      for (const t of [q, k, v, kpos, att]) t.dispose();
    }
    x.dispose(); batch.dispose(); cache.dispose(); m.dispose();
  }
});

test('queryAttentionMass = the softmax probabilities ops.attention applies (read out with one-hot values)', () => {
  for (const [name, w] of cases) {
    const m = Model.fromWeights(w);
    const c = m.config, d = c.headDim, H = c.nHeads, G = c.nKvHeads;
    const prefix = [c.bosId], ctx = randomTokens(37, 8, c.vocabSize), query = Int32Array.from(randomTokens(4, 9, c.vocabSize));
    const P = 1, N = ctx.length, Q = query.length;
    const cache = m.newCache(P + N + Q);
    m.prefill([...prefix, ...ctx], { past: cache, logits: 'none' });
    const mass = queryAttentionMass(m, cache, P, N, query, 2);
    assert.is(cache.length, P + N, 'the pre-pass leaves prefix + context');
    assert.is(mass.length, 2);
    // The same pre-pass by hand; probability of slot s = attention output with v = one-hot on s.
    const pos = Array.from({ length: Q }, (_, i) => P + N + i);
    const batch = m.batch(pos, cache.append(pos));
    const x = m.embed(query);
    for (let l = 0; l < 2; l++) {
      const q = m.queryVectors(l, x, batch);
      m.layer(l, x, batch, cache);
      const S = cache.length;
      const k = cache.slab(l, 0).rows(0, S);
      const kpos = Tensor.fromTypedArray(cache.positions.slice(0, S));
      const want = new Float64Array(N);
      for (let t0 = 0; t0 < N; t0 += d) {
        const oneHot = new Float32Array(S * G * d);
        for (let t = t0; t < Math.min(N, t0 + d); t++) for (let g = 0; g < G; g++) oneHot[((P + t) * G + g) * d + (t - t0)] = 1;
        const v = Tensor.fromTypedArray(oneHot, [S, G, d]);
        const att = Tensor.empty([Q, H, d]);
        ops.attention(q, k, v, batch.positionsTensor, kpos, att, { queryHeads: H, kvHeads: G, headDim: d, scale: 1 / Math.sqrt(d) });
        const a = att.toFloat32();
        for (let i = 0; i < Q * H; i++) for (let t = t0; t < Math.min(N, t0 + d); t++) want[t]! += a[i * d + (t - t0)]!;
        v.dispose(); att.dispose();
      }
      const e = relErr(mass[l]!, want);
      assert.ok(e <= 1e-5, `${name} layer ${l}: mass vs attention probabilities ${e}`);
      const total = mass[l]!.reduce((s, t) => s + t, 0);
      assert.ok(total > 0 && total < Q * H, `${name} layer ${l}: context mass ${total} outside (0, ${Q * H})`);
      q.dispose(); k.dispose(); kpos.dispose();
    }
    x.dispose(); batch.dispose(); cache.dispose(); m.dispose();
  }
});

test('grownBackwards: best seeds first, each with up to window - 1 tokens before it inside its chunk', () => {
  const c = { nContext: 10, chunkStarts: [0, 4], chunkLengths: [4, 6] };
  const score = Float64Array.from([0, 0, 0, 0, 0, 9, 0, 0, 5, 1]);
  // seed 5 (chunk 1 starts at 4): 5, 4; seed 8: 8, 7, 6; seed 9: 9
  assert.equal(Array.from(grownBackwards(c, score, 6, 3)), [4, 5, 6, 7, 8, 9]);
  assert.equal(Array.from(grownBackwards(c, score, 3, 3)), [4, 5, 8]);
  assert.equal(Array.from(grownBackwards(c, score, 4, 1)), [5, 8, 9, 0].sort((a, b) => a - b));
});

test('defaultQueryLayers: the late layers, stopping before the last; explicit values kept', () => {
  assert.equal(defaultQueryLayers(8), [5, 7]);
  assert.equal(defaultQueryLayers(16), [11, 15]);
  assert.equal(defaultQueryLayers(32), [22, 31]);
  assert.equal(defaultQueryLayers(2), [0, 1]);
  assert.equal(defaultQueryLayers(1), [0, 1]);
  assert.equal(defaultQueryLayers(8, 4), [3, 4]);
  assert.equal(defaultQueryLayers(8, undefined, 2), [2, 7]);
  assert.equal(defaultQueryLayers(8, 6, 1), [1, 6]);
});

test('query-attention under the fusor: one set on every layer, k = r N, pre-pass counted, ratio 1 = full prefill', async () => {
  const w = cases[1]![1];
  const m = Model.fromWeights(w);
  const BOS = [m.config.bosId], L = m.config.nLayers;
  const parts = [41, 53, 37].map((n, i) => randomTokens(n, 20 + i, m.config.vocabSize));
  const query = randomTokens(9, 30, m.config.vocabSize);
  const chunks = precomputeChunks(m, BOS, parts);
  const N = 41 + 53 + 37, k = Math.round(0.15 * N);
  for (const layers of [1, 4, L]) {
    const r = fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', ratio: 0.15, attentionLayers: layers });
    assert.is(r.selected[0]!.length, k);
    for (let l = 1; l < L; l++) assert.equal(Array.from(r.selected[l]!), Array.from(r.selected[0]!), `layer ${l}: one set`);
    assert.ok(Math.abs(r.ratio - k / N) < 1e-12);
    assert.ok(Math.abs(r.computeFraction - (k / N + (9 * layers) / (N * L))) < 1e-12, `compute fraction ${r.computeFraction}`);
    assert.is(r.cache.length, 1 + N + 9);
    r.cache.dispose();
  }
  const exact = m.prefill([...BOS, ...parts.flat(), ...query], { logits: 'all' });
  exact.cache.dispose();
  const full = fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', ratio: 1, attentionLayers: L });
  const e = relErr(full.logits, exact.logits.slice(exact.logits.length - 9 * m.config.vocabSize));
  assert.ok(e <= 1e-5, `query-attention at ratio 1 vs full prefill: ${e}`);
  full.cache.dispose();
  assert.throws(() => fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', attentionLayers: L + 1 }), (err: unknown) => err instanceof ArgumentError);
  assert.throws(() => fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', window: 0 }), (err: unknown) => err instanceof ArgumentError);
  assert.throws(() => fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', attentionLayers: 3, attentionFrom: 3 }), (err: unknown) => err instanceof ArgumentError);
  // Defaults: rank by layers floor(0.7 L)..L-2; the pre-pass runs L-1 layers (counted as such).
  const [dFrom, dTo] = defaultQueryLayers(L);
  const byDefault = fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', ratio: 0.15 });
  const explicit = fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', ratio: 0.15, attentionLayers: dTo, attentionFrom: dFrom, window: 1 });
  assert.equal(Array.from(byDefault.selected[0]!), Array.from(explicit.selected[0]!));
  assert.ok(Math.abs(byDefault.computeFraction - (k / N + (9 * dTo) / (N * L))) < 1e-12, `default compute fraction ${byDefault.computeFraction}`);
  byDefault.cache.dispose();
  explicit.cache.dispose();
  // Ranking by the last of the pre-pass's layers only: still one set of k on every layer.
  const late = fuse(m, { prefix: BOS, chunks, query, policy: 'query-attention', ratio: 0.15, attentionLayers: L, attentionFrom: L - 1, window: 1 });
  assert.is(late.selected[L - 1]!.length, k);
  late.cache.dispose();
  let threw: unknown = null;
  try {
    // The policy is refused before any chunk is looked at.
    await fusePipelined(m, { prefix: BOS, chunks: [], query, policy: 'query-attention' });
  } catch (err) {
    threw = err;
  }
  assert.ok(threw instanceof ArgumentError, `fusePipelined must refuse query-attention, got ${String(threw)}`);
  for (const c of chunks) c.dispose();
  m.dispose();
});

test.run();
