// CacheBlend's query-attention policy on the CPU: ops.attentionMass (the C++ op the pre-pass scores
// with) against a plain-JS double-precision reference (GQA and MHA, shuffled and never-visible key
// positions, queries that see no key, f32 / f16 / bf16, the sum property, typed errors from the
// TypeScript checks and from the native ones); Model.queryVectors against a plain-JS reference from
// the weights (random qwen2-style model with Q bias and GQA, odd sizes; stories260K); the engine's
// layer output rebuilt from those queries (ops.attention on the cache, then W_o and the FFN in JS);
// the pre-pass's attention mass against probabilities read out of ops.attention with one-hot
// values; and the policy's plan under the fusor's rules (one set on every layer, ratio 1 = full
// prefill, compute fraction with the pre-pass counted).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fuse, fusePipelined, precomputeChunks, queryAttentionMass } from '../src/cacheblend/index.js';
import { defaultQueryLayers, grownBackwards } from '../src/cacheblend/policies.js';
import type { ModelConfig } from '../src/model/config.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ropeInvFreq } from '../src/model/rope.js';
import { expectedTensorShapes, type ModelWeights } from '../src/model/weights.js';
import { addon } from '../src/runtime/addon.js';
import type { DType } from '../src/runtime/dtype.js';
import { ArgumentError, DTypeError, ShapeError, native } from '../src/runtime/errors.js';
import { cpuThreads, setCpuThreads } from '../src/runtime/memory.js';
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

/** attentionMass in f64: q [nq, H, d], k [nk, G, d]; out[j] = sum over (i, h) of softmax_j over kpos[j] <= qpos[i]. */
function attentionMassJs(q: ArrayLike<number>, k: ArrayLike<number>, qpos: ArrayLike<number>, kpos: ArrayLike<number>, H: number,
  G: number, d: number, scale: number): Float64Array {
  const nq = qpos.length, nk = kpos.length, group = H / G;
  const out = new Float64Array(nk), logit = new Float64Array(nk);
  for (let i = 0; i < nq; i++)
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      let max = -Infinity;
      for (let j = 0; j < nk; j++) {
        if (kpos[j]! > qpos[i]!) continue;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[(i * H + h) * d + e]! * k[(j * G + g) * d + e]!;
        logit[j] = dot * scale;
        max = Math.max(max, logit[j]!);
      }
      if (max === -Infinity) continue;  // sees no key
      let z = 0;
      for (let j = 0; j < nk; j++) if (kpos[j]! <= qpos[i]!) z += Math.exp(logit[j]! - max);
      for (let j = 0; j < nk; j++) if (kpos[j]! <= qpos[i]!) out[j]! += Math.exp(logit[j]! - max) / z;
    }
  return out;
}

function randomValues(n: number, seed: number, scale: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (2 * r() - 1) * scale);
}

/** Key positions: a shuffle of 0..nk-1 with every 7th key moved beyond every query (never visible). */
function massPositions(nq: number, nk: number, seed: number): { qpos: Int32Array; kpos: Int32Array } {
  const r = rng(seed);
  const kpos = Int32Array.from({ length: nk }, (_, j) => j);
  for (let j = nk - 1; j > 0; j--) {
    const t = Math.floor(r() * (j + 1));
    [kpos[j], kpos[t]] = [kpos[t]!, kpos[j]!];
  }
  for (let j = 3; j < nk; j += 7) kpos[j] = nk + 10 + j;
  // Query 0 sees no key (position -1); the others see a random share of the keys.
  const qpos = Int32Array.from({ length: nq }, (_, i) => (i === 0 && nq > 1 ? -1 : Math.floor(r() * nk)));
  return { qpos, kpos };
}

// ---- tests ----------------------------------------------------------------------------------------

test('ops.attentionMass = the f64 reference (GQA, MHA, shuffled and never-visible keys, blind queries; f32, f16, bf16)', () => {
  // [nq, nk, heads, kvHeads, headDim]
  const shapes = [[5, 97, 8, 2, 16], [3, 61, 4, 4, 32], [1, 200, 6, 3, 12], [40, 333, 8, 2, 24], [7, 19, 2, 1, 5]] as const;
  // On the values the op saw the only error is the f32 output (measured <= 6e-8); against the
  // unrounded inputs, what 16-bit q and k cost (measured <= 2e-4 for f16, 1.2e-3 for bf16).
  const ROUNDING: Record<string, number> = { f32: 1e-6, f16: 2e-3, bf16: 1e-2 };
  let seed = 900;
  for (const [nq, nk, H, G, d] of shapes) for (const dtype of ['f32', 'f16', 'bf16'] as DType[]) {
    const { qpos, kpos } = massPositions(nq, nk, seed);
    const qv = randomValues(nq * H * d, seed + 1, 1.5), kv = randomValues(nk * G * d, seed + 2, 1.5);
    seed += 3;
    const q = Tensor.fromTypedArray(qv, [nq, H, d], { dtype }), k = Tensor.fromTypedArray(kv, [nk, G, d], { dtype });
    const qp = Tensor.fromTypedArray(qpos), kp = Tensor.fromTypedArray(kpos), out = Tensor.empty([nk]);
    const shape = { heads: H, kvHeads: G, headDim: d, scale: 1 / Math.sqrt(d) };
    ops.attentionMass(q, k, qp, kp, out, shape);
    const got = out.toFloat32();
    const name = `${dtype} nq=${nq} nk=${nk} ${H}/${G}x${d}`;
    // The reference on the values the op saw (16-bit inputs read back exactly), then on the originals.
    const want = attentionMassJs(q.toFloat32(), k.toFloat32(), qpos, kpos, H, G, d, shape.scale);
    const e = relErr(got, want);
    assert.ok(e <= 1e-6, `${name}: relative error ${e}`);
    const er = relErr(got, attentionMassJs(qv, kv, qpos, kpos, H, G, d, shape.scale));
    assert.ok(er <= ROUNDING[dtype]!, `${name}: relative error against the unrounded inputs ${er}`);
    // Keys no query sees get exactly 0; every (query, head) that sees a key adds a total of 1.
    const minK = Math.min(...kpos);
    let pairs = 0;
    for (const p of qpos) if (p >= minK) pairs += H;
    for (let j = 0; j < nk; j++) if (kpos[j]! > Math.max(...qpos)) assert.is(got[j], 0, `${name}: never-visible key ${j}`);
    const total = got.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - pairs) <= 1e-5 * pairs, `${name}: sum ${total}, expected ${pairs} (query, head) pairs`);
    if (nq > 1) assert.ok(pairs < nq * H, `${name}: the case must have a query that sees no key`);
    for (const t of [q, k, qp, kp, out]) t.dispose();
  }
});

test('ops.attentionMass: the same bits with 1 and 2 threads and run to run; nq = 0 gives zeros, nk = 0 is a no-op', () => {
  const [nq, nk, H, G, d] = [9, 501, 8, 2, 32];
  const { qpos, kpos } = massPositions(nq, nk, 77);
  const q = Tensor.fromTypedArray(randomValues(nq * H * d, 78, 2), [nq, H, d]), k = Tensor.fromTypedArray(randomValues(nk * G * d, 79, 2), [nk, G, d]);
  const qp = Tensor.fromTypedArray(qpos), kp = Tensor.fromTypedArray(kpos);
  const shape = { heads: H, kvHeads: G, headDim: d, scale: 0.2 };
  const threads = cpuThreads();
  const run = (n: number) => {
    setCpuThreads(n);
    const out = Tensor.empty([nk]);
    ops.attentionMass(q, k, qp, kp, out, shape);
    const r = out.toFloat32();
    out.dispose();
    return r;
  };
  try {
    const a = run(1), b = run(2), c = run(2);
    assert.equal(Array.from(b), Array.from(a), '1 vs 2 threads');
    assert.equal(Array.from(c), Array.from(b), 'run to run');
  } finally {
    setCpuThreads(threads);
  }
  const none = Tensor.fromTypedArray(new Float32Array(nk).fill(7));
  ops.attentionMass(Tensor.empty([0, H, d]), k, Tensor.empty([0], { dtype: 'i32' }), kp, none, shape);
  assert.ok(none.toFloat32().every((v) => v === 0), 'no query: zeros');
  ops.attentionMass(q, Tensor.empty([0, G, d]), qp, Tensor.empty([0], { dtype: 'i32' }), Tensor.empty([0]), shape);
  for (const t of [q, k, qp, kp, none]) t.dispose();
});

test('ops.attentionMass: typed errors for shapes, dtypes, heads and scale, in TypeScript and in the native op', () => {
  const q = Tensor.empty([3, 8, 16]), k = Tensor.empty([10, 2, 16]), qp = Tensor.empty([3], { dtype: 'i32' }), kp = Tensor.empty([10], { dtype: 'i32' });
  const out = Tensor.empty([10]);
  const shape = { heads: 8, kvHeads: 2, headDim: 16, scale: 0.25 };
  const throws = (fn: () => void, cls: new (...a: never[]) => Error, what: string) =>
    assert.throws(fn, (e: unknown) => e instanceof cls, what);
  ops.attentionMass(q, k, qp, kp, out, shape);
  throws(() => ops.attentionMass(q, k, qp, kp, out, { ...shape, kvHeads: 3 }), ArgumentError, 'heads not a multiple of kvHeads');
  throws(() => ops.attentionMass(q, k, qp, kp, out, { ...shape, heads: 2.5 }), ArgumentError, 'fractional heads');
  throws(() => ops.attentionMass(q, k, qp, kp, out, { ...shape, headDim: 0 }), ArgumentError, 'headDim 0');
  for (const scale of [0, -1, NaN, Infinity]) throws(() => ops.attentionMass(q, k, qp, kp, out, { ...shape, scale }), ArgumentError, `scale ${scale}`);
  throws(() => ops.attentionMass(q, Tensor.empty([10, 2, 16], { dtype: 'bf16' }), qp, kp, out, shape), DTypeError, 'q f32, k bf16');
  throws(() => ops.attentionMass(Tensor.empty([3, 8, 16], { dtype: 'i32' }), Tensor.empty([10, 2, 16], { dtype: 'i32' }), qp, kp, out, shape), DTypeError, 'i32 q and k');
  throws(() => ops.attentionMass(q, k, qp, kp, Tensor.empty([10], { dtype: 'f16' }), shape), DTypeError, 'out f16');
  throws(() => ops.attentionMass(q, k, qp, Tensor.empty([10]), out, shape), DTypeError, 'kpos f32');
  throws(() => ops.attentionMass(q, k, qp, kp, Tensor.empty([9]), shape), ShapeError, 'out [9]');
  throws(() => ops.attentionMass(Tensor.empty([3, 8, 15]), k, qp, kp, out, shape), ShapeError, 'q not [nq, 8, 16]');
  throws(() => ops.attentionMass(q, Tensor.empty([10, 3, 16]), qp, kp, out, shape), ShapeError, 'k not [nk, 2, 16]');
  throws(() => ops.attentionMass(q, k, Tensor.empty([2], { dtype: 'i32' }), kp, out, shape), ShapeError, 'qpos [2]');
  throws(() => ops.attentionMass(q, k, qp, Tensor.empty([11], { dtype: 'i32' }), out, shape), ShapeError, 'kpos [11]');
  // The binding re-checks: called past the TypeScript checks, it throws typed errors (never aborts).
  const raw = (o: Partial<{ nq: number; nk: number; hq: number; hkv: number; d: number; scale: number; dtype: number }>) => {
    const a = { nq: 3, nk: 10, hq: 8, hkv: 2, d: 16, scale: 0.25, dtype: 0, ...o };
    return () => native(() => addon().attentionMass(q.nativeHandle, k.nativeHandle, a.dtype, qp.nativeHandle, kp.nativeHandle,
      out.nativeHandle, a.nq, a.nk, a.hq, a.hkv, a.d, a.scale, null));
  };
  raw({})();
  throws(raw({ hkv: 3 }), ArgumentError, 'native: heads not a multiple of kv heads');
  throws(raw({ hkv: 0 }), ArgumentError, 'native: kv heads 0');
  throws(raw({ d: 0 }), ArgumentError, 'native: head dim 0');
  throws(raw({ scale: 0 }), ArgumentError, 'native: scale 0');
  throws(raw({ scale: 1e300 }), ArgumentError, 'native: scale beyond f32');
  throws(raw({ dtype: 5 }), DTypeError, 'native: i32 dtype');
  throws(raw({ nk: 11 }), ShapeError, 'native: k too small for nk');
  throws(raw({ nq: 4 }), ShapeError, 'native: q too small for nq');
  throws(raw({ nq: 1.5 }), ArgumentError, 'native: fractional nq');
  for (const t of [q, k, qp, kp, out]) t.dispose();
});

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
