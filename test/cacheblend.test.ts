// CacheBlend on the CPU (src/cacheblend): chunk precompute, RoPE re-positioning, the fusor's two
// gates (ratio 1.0 = full prefill; full reuse = the re-positioned chunks concatenated), each policy's
// recompute ratio and compute fraction, quality (KL vs full prefill) on stories260K, instrumentation,
// and typed errors. Contexts: [BOS] + 4 chunks of 64 tokens of the fixture's first story (run.c's
// greedy output) + a 32-token query, the model's own greedy continuation of the story.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  attentionDeviation, fuse, gradualSchedule, makePolicy, meanKL, modelFingerprint, neighbourSpearman, precomputeChunk,
  precomputeChunks, repositionChunk, reuseDeviation, spearman, type ChunkKV, type PolicyName, type SelectionPolicy,
} from '../src/cacheblend/index.js';
import { generate } from '../src/model/generate.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import type { ModelConfig } from '../src/model/config.js';
import { ArgumentError, DTypeError, InternalError, ShapeError } from '../src/runtime/errors.js';
import { STORIES_BIN } from './support/models.js';
import { relErr, rng } from './support/reference.js';
import { assertSameFusion, concatenatedLogits } from './support/cacheblend.js';
import { hostSelecting } from './support/host-select.js';
import { topK } from '../src/cacheblend/policies.js';
import * as ops from '../src/runtime/ops.js';
import { Tensor } from '../src/runtime/tensor.js';

interface Fixture { cases: { generatedTokens: number[] }[] }
const fx = JSON.parse(readFileSync(new URL('./fixtures/llama2c-stories260K.json', import.meta.url), 'utf8')) as Fixture;

const bin = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const BOS = [bin.config.bosId];
const story = fx.cases[0]!.generatedTokens.slice(0, 256);
const storyChunks = [0, 1, 2, 3].map((i) => story.slice(i * 64, (i + 1) * 64));
const cont = generate(bin, [...BOS, ...story], { maxTokens: 32 });
const storyQuery = cont.tokens;
cont.cache.dispose();
const chunks = precomputeChunks(bin, BOS, storyChunks);

const base: Omit<ModelConfig, 'architecture' | 'ropeScaling' | 'qkvBias' | 'ropeTheta'> = {
  dim: 64, hiddenDim: 96, nLayers: 3, nHeads: 4, nKvHeads: 2, headDim: 16, vocabSize: 300, maxSeqLen: 256,
  normEps: 1e-5, tiedEmbeddings: false, bosId: 1, eosId: 2,
};
const RANDOM: Record<string, ModelConfig> = {
  llama: { ...base, architecture: 'llama', ropeTheta: 10000, ropeScaling: null, qkvBias: false },
  'llama3-scaled': { ...base, architecture: 'llama', ropeTheta: 500000, qkvBias: false,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 } },
  mistral: { ...base, architecture: 'mistral', ropeTheta: 1000000, ropeScaling: null, qkvBias: false },
  'qwen2-bias': { ...base, architecture: 'qwen2', ropeTheta: 1000000, ropeScaling: null, qkvBias: true, nKvHeads: 1 },
};

function randomTokens(n: number, seed: number, vocab: number): number[] {
  const u = rng(seed);
  return Array.from({ length: n }, () => 3 + Math.floor(u() * (vocab - 3)));
}

/** Full prefill of prefix + chunks + query: the query rows' logits. */
function exactLogits(m: Model, prefix: number[], parts: number[][], query: number[]): Float32Array {
  const r = m.prefill([...prefix, ...parts.flat(), ...query], { logits: 'all' });
  r.cache.dispose();
  return r.logits.slice(r.logits.length - query.length * m.config.vocabSize);
}


test('fingerprint: stable, and any config change (shape, rope scaling, bias) changes it', () => {
  const fp = modelFingerprint(bin.config);
  assert.is(fp, modelFingerprint({ ...bin.config }));
  assert.match(fp, /^llama\/L5\/d64\/ff172\/h8\/kv4\/hd8\/v512\/rope-halves\/[0-9a-f]{16}$/);
  const others = [{ ...bin.config, ropeTheta: 500000 }, { ...bin.config, nLayers: 6 },
    { ...bin.config, ropeScaling: { type: 'linear' as const, factor: 2 } }, { ...bin.config, qkvBias: true }];
  for (const o of others) assert.is.not(modelFingerprint(o), fp);
});

test('precompute: each chunk prefilled after BOS, prefix KV dropped, positions 1..64, KV as in one prefill', () => {
  const c = chunks[1]!;
  assert.equal(Array.from(c.tokens), storyChunks[1]);
  assert.equal(Array.from(c.positions), Array.from({ length: 64 }, (_, i) => 1 + i));
  assert.equal(c.kv.shape, [5, 2, 64, 4, 8]);
  const r = bin.prefill([...BOS, ...storyChunks[1]!], { logits: 'none' });
  const ref = r.cache.exportSpan(1, 65);
  assert.equal(Array.from(c.kv.toFloat32()), Array.from(ref.kv.toFloat32()));
  const one = precomputeChunk(bin, BOS, storyChunks[1]!);
  assert.equal(Array.from(one.kv.toFloat32()), Array.from(ref.kv.toFloat32()));
  for (const t of [ref.kv, one]) t.dispose();
  r.cache.dispose();
});

test('re-positioning = direct prefill at the new positions (<= 1e-5), stories260K and random llama3-scaled', () => {
  const cases: [Model, number[], number[]][] = [[bin, BOS, storyChunks[2]!]];
  const m3 = Model.random(RANDOM['llama3-scaled']!, { seed: 3 });
  cases.push([m3, [1], randomTokens(37, 9, 300)]);
  for (const [m, prefix, toks] of cases) {
    const c = precomputeChunk(m, prefix, toks);
    const n = toks.length, p = prefix.length;
    for (const shift of [1, 63, 150, m.config.maxSeqLen - n - p]) {
      // The whole prefix + chunk moved by `shift`: attention sees the same relative positions, so
      // the chunk's V is unchanged and its K is rotated by exactly `shift`.
      const direct = m.prefill([...prefix, ...toks], { positions: Array.from({ length: p + n }, (_, i) => shift + i), logits: 'none' });
      const ref = direct.cache.exportSpan(p, p + n);
      const moved = repositionChunk(m, c, Array.from(c.positions, (q) => q + shift));
      assert.equal(Array.from(moved.positions), Array.from(ref.positions));
      const e = relErr(moved.kv.toFloat32(), ref.kv.toFloat32());
      assert.ok(e <= 1e-5, `shift ${shift}: relative error ${e}`);
      // and back again (negative deltas)
      const back = repositionChunk(m, moved, c.positions);
      const eb = relErr(back.kv.toFloat32(), c.kv.toFloat32());
      assert.ok(eb <= 1e-5, `shift ${shift} and back: relative error ${eb}`);
      for (const t of [ref.kv, moved, back]) t.dispose();
      direct.cache.dispose();
    }
    c.dispose();
  }
  m3.dispose();
});

test('gates on stories260K: full-recompute = full prefill (<= 1e-5), full-reuse = concatenated chunk KV + query prefill', () => {
  const exact = exactLogits(bin, BOS, storyChunks, storyQuery);
  const full = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'full-recompute' });
  const e = relErr(full.logits, exact);
  assert.ok(e <= 1e-5, `full-recompute vs full prefill: ${e}`);
  const reuse = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'full-reuse' });
  const concat = concatenatedLogits(bin, BOS, chunks, storyQuery);
  assert.ok(relErr(reuse.logits, concat) <= 1e-6, `full-reuse vs concatenation: ${relErr(reuse.logits, concat)}`);
  assert.ok(relErr(reuse.logits, exact) > 1e-3, 'full reuse must differ from full prefill (cross-chunk attention is lost)');
  // ratio 1.0 of every selective policy is full recompute too
  for (const policy of ['cacheblend', 'lmcache-v1', 'epic', 'random'] as const) {
    const r = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy, ratio: 1 });
    assert.ok(relErr(r.logits, exact) <= 1e-5, `${policy} at ratio 1: ${relErr(r.logits, exact)}`);
    r.cache.dispose();
  }
  for (const r of [full, reuse]) r.cache.dispose();
});

test('gates on random llama, llama3-scaled, mistral and qwen2 (QKV bias, MQA) models, odd chunk sizes', () => {
  for (const [name, cfg] of Object.entries(RANDOM)) {
    const m = Model.random(cfg, { seed: 11 });
    const parts = [19, 23, 31].map((n, i) => randomTokens(n, 100 + i, cfg.vocabSize));
    const query = randomTokens(7, 200, cfg.vocabSize);
    const cs = precomputeChunks(m, [1], parts);
    const exact = exactLogits(m, [1], parts, query);
    const full = fuse(m, { prefix: [1], chunks: cs, query, policy: 'full-recompute' });
    assert.ok(relErr(full.logits, exact) <= 1e-5, `${name} full-recompute: ${relErr(full.logits, exact)}`);
    const reuse = fuse(m, { prefix: [1], chunks: cs, query, policy: 'full-reuse' });
    const concat = concatenatedLogits(m, [1], cs, query);
    assert.ok(relErr(reuse.logits, concat) <= 1e-6, `${name} full-reuse: ${relErr(reuse.logits, concat)}`);
    const last = fuse(m, { prefix: [1], chunks: cs, query, policy: 'cacheblend', ratio: 1, logits: 'last' });
    assert.is(last.logits.length, cfg.vocabSize);
    assert.ok(relErr(last.logits, exact.subarray(6 * cfg.vocabSize)) <= 1e-5);
    for (const r of [full, reuse, last]) r.cache.dispose();
    for (const c of cs) c.dispose();
    m.dispose();
  }
});

test('gradual schedule: starts above r, never grows, averages r exactly up to rounding', () => {
  assert.equal(gradualSchedule(0.15, 0.225, 256, 3), [58, 38, 19]);
  for (const [r, m] of [[0.15, 3], [0.05, 30], [0.5, 7], [0.9, 4], [1, 3], [0, 3]] as const) {
    const c = gradualSchedule(r, Math.min(1, (4 * r) / 3), 256, m);
    assert.is(c.reduce((a, b) => a + b, 0), Math.round(r * 256 * m));
    for (let j = 1; j < m; j++) assert.ok(c[j]! <= c[j - 1]!);
    if (r > 0 && r < 1) assert.ok(c[0]! > r * 256);
  }
});

test('topKRows (CPU) = the policies\' topK: k largest, ties to the lower row, ascending', () => {
  const u = rng(5);
  for (const n of [1, 7, 300, 2500]) {
    // few distinct values, so ties are common
    const vals = Float32Array.from({ length: n }, () => Math.floor(u() * 20) / 4);
    const v = Tensor.fromTypedArray(vals);
    for (const k of [0, 1, Math.floor(n / 3), n]) {
      const out = Tensor.empty([k], { dtype: 'i32' });
      ops.topKRows(v, k, out);
      const want = topK(Int32Array.from({ length: n }, (_, i) => i), Float64Array.from(vals), k);
      assert.equal(Array.from(out.toTypedArray() as Int32Array), Array.from(want), `n ${n} k ${k}`);
      out.dispose();
    }
    v.dispose();
  }
  const v = Tensor.fromTypedArray(new Float32Array(4)), o = Tensor.empty([5], { dtype: 'i32' });
  assert.throws(() => ops.topKRows(v, 5, o), (e: unknown) => e instanceof ShapeError && /k must be in 0\.\.4/.test(String(e)));
  assert.throws(() => ops.topKRows(o, 1, v), (e: unknown) => e instanceof DTypeError);
  v.dispose();
  o.dispose();
});

test('device-side selection (deviceRule + topKRows) = selection on the host: same sets, deviations, logits', () => {
  for (const name of ['cacheblend', 'cacheblend-released', 'lmcache-v1'] as const)
    for (const ratio of [0, 0.01, 0.1, 0.15, 0.3]) {
      const p = makePolicy(name, { ratio });
      assertSameFusion(bin, { prefix: BOS, chunks, query: storyQuery }, p, hostSelecting(p), `${name} ${ratio}`);
    }
});

test('the check layer\'s early shrink (K/V of every token, the full layer on the survivors) = the full layer on every token first', () => {
  // Without declared check layers the fusor runs the check layer whole and shrinks one layer later.
  const late = (p: SelectionPolicy): SelectionPolicy => ({ ...p, plan: (c) => ({ ...p.plan(c), checkLayers: [] }) });
  for (const name of ['cacheblend', 'cacheblend-released', 'lmcache-v1'] as const)
    for (const [policy, label] of [[makePolicy(name, { ratio: 0.15 }), 'device'], [hostSelecting(makePolicy(name, { ratio: 0.15 })), 'host']] as const)
      assertSameFusion(bin, { prefix: BOS, chunks, query: storyQuery }, policy, late(policy), `${name} ${label}`);
});

test('each policy reports its recompute ratio and compute fraction (N = 256, 5 layers, r = 0.15)', () => {
  const N = 256, L = 5;
  const k = Math.round(0.15 * N); // 38
  const want: Record<string, [number, number]> = {
    'full-recompute': [1, 1],
    'full-reuse': [0, 0],
    'prefix-caching': [192 / N, 192 / N],
    // check layer 1: layers 0 and 1 recompute everything, layers 2..4 average r
    cacheblend: [115 / (3 * N), (2 * N + 115) / (L * N)],
    'cacheblend-released': [41 / N, (2 * N + 3 * 41) / (L * N)],
    'lmcache-v1': [k / N, (2 * N + 3 * k) / (L * N)],
    'cacheblend-window': [k / N, (2 * N + 3 * k) / (L * N)],
    epic: [k / N, k / N],
    random: [k / N, k / N],
    oracle: [k / N, k / N],
  };
  for (const [policy, [r, cf]] of Object.entries(want)) {
    const res = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: policy as PolicyName,
      ratio: policy === 'cacheblend-released' ? undefined : 0.15 });
    assert.ok(Math.abs(res.ratio - r) < 1e-12, `${policy}: ratio ${res.ratio}, expected ${r}`);
    assert.ok(Math.abs(res.computeFraction - cf) < 1e-12, `${policy}: compute fraction ${res.computeFraction}, expected ${cf}`);
    if (policy !== 'full-recompute' && policy !== 'full-reuse' && policy !== 'prefix-caching') assert.ok(Math.abs(res.ratio - (policy === 'cacheblend-released' ? 0.16 : 0.15)) <= 1 / N);
    for (let l = 1; l < L; l++) for (const i of res.selected[l]!) assert.ok(res.selected[l - 1]!.includes(i), `${policy}: set grew on layer ${l}`);
    res.cache.dispose();
  }
  const cb = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'cacheblend', ratio: 0.15 });
  assert.equal(cb.schedule.map((s) => Math.round(s * N)), [256, 256, 51, 38, 26]);
  assert.equal(cb.checkLayers, [1]);
  assert.ok(cb.deviations[1] && cb.deviations[2] && cb.deviations[3] && !cb.deviations[4]);
  cb.cache.dispose();
  // cacheblend-window: runs of at most 8 tokens from each high-deviation token onwards, inside its chunk.
  const win = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'cacheblend-window', ratio: 0.15 });
  const set = Array.from(win.selected[2]!);
  assert.is(set.length, k);
  // Every run of consecutive selected tokens within a chunk starts at a seed: a token whose deviation
  // on the check layer (layer 1, all tokens) is among the k largest.
  const dev1 = win.deviations[1]!;
  const kth = [...dev1].sort((a, b) => b - a)[k - 1]!;
  for (let i = 0; i < set.length; i++) {
    const continues = i > 0 && set[i] === set[i - 1]! + 1 && Math.floor(set[i]! / 64) === Math.floor(set[i - 1]! / 64);
    if (!continues) assert.ok(dev1[set[i]!]! >= kth, `run start ${set[i]} is not a top-${k} deviation token`);
  }
  assert.equal(Array.from(win.selected[4]!), set, 'one set after the check layer');
  win.cache.dispose();
  const ep = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'epic', ratio: 0.15 });
  const lead = [0, 64, 128, 192].flatMap((s, i) => Array.from({ length: i < 2 ? 10 : 9 }, (_, j) => s + j));
  assert.equal(Array.from(ep.selected[0]!), lead);
  ep.cache.dispose();
});

test('quality on stories260K at r = 0.15: cacheblend has lower KL than full reuse (KL table)', () => {
  const V = bin.config.vocabSize;
  const exact = exactLogits(bin, BOS, storyChunks, storyQuery);
  const full = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy: 'full-recompute', keepHidden: true });
  const rows: { policy: string; ratio: number; computeFraction: number; kl: number; attnDev: number }[] = [];
  for (const policy of ['full-recompute', 'full-reuse', 'prefix-caching', 'cacheblend', 'cacheblend-released', 'lmcache-v1', 'epic', 'random', 'oracle'] as const) {
    const r = fuse(bin, { prefix: BOS, chunks, query: storyQuery, policy, ratio: 0.15, keepHidden: true });
    rows.push({ policy, ratio: +r.ratio.toFixed(4), computeFraction: +r.computeFraction.toFixed(4),
      kl: +meanKL(exact, r.logits, V).toExponential(3), attnDev: +attentionDeviation(r, full).toExponential(3) });
    r.cache.dispose();
  }
  full.cache.dispose();
  console.log('\nstories260K, [BOS] + 4 x 64-token chunks + 32-token query, r = 0.15 (KL: mean over query positions, nats)');
  console.table(rows);
  const kl = Object.fromEntries(rows.map((r) => [r.policy, r.kl]));
  assert.ok(kl['full-recompute']! < 1e-9);
  assert.ok(kl.cacheblend! < kl['full-reuse']!, `cacheblend ${kl.cacheblend} vs full reuse ${kl['full-reuse']}`);
  assert.ok(kl['full-reuse']! > 1e-3, 'full reuse must lose something on this context');
});

test('instrumentation: reuse deviation is ~0 on layer 0 and grows after; Spearman between layers', () => {
  const d = reuseDeviation(bin, BOS, chunks);
  assert.is(d.kv.length, 5);
  assert.is(d.kv[0]!.length, 256);
  const mean = (a: Float64Array) => a.reduce((s, x) => s + x, 0) / a.length;
  // Layer 0's K/V depend only on the token and its position: reuse is exact there up to rounding.
  assert.ok(mean(d.kv[0]!) < 1e-8 * mean(d.kv[1]!), `layer 0 ${mean(d.kv[0]!)} vs layer 1 ${mean(d.kv[1]!)}`);
  for (let l = 1; l < 5; l++) assert.ok(mean(d.k[l]!) > 0 && mean(d.v[l]!) > 0);
  // the first chunk sits where it was computed (after BOS): its reused KV is exact on every layer
  for (let l = 0; l < 5; l++) assert.ok(d.kv[l]!.subarray(0, 64).every((x) => x < 1e-8 * mean(d.kv[1]!)));
  const rho = neighbourSpearman(d.kv.slice(1));
  console.log('Spearman of per-token KV deviation, layers (1,2) (2,3) (3,4):', rho.map((x) => x.toFixed(3)).join(' '));
  for (const x of rho) assert.ok(x > 0.3 && x <= 1);
  assert.is(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
  assert.is(spearman([1, 2, 3, 4], [4, 3, 2, 1]), -1);
  assert.ok(Math.abs(spearman([1, 1, 2, 3], [1, 1, 2, 3]) - 1) < 1e-12);
  assert.ok(Math.abs(meanKL([0, 1, 2], [0, 1, 2], 3)) < 1e-15);
});

test('typed errors: other model, KV shape, KV dtype, ratio outside [0, 1], more tokens than the context, a growing plan', () => {
  const other = Model.random(RANDOM.llama!, { seed: 1 });
  const foreign = precomputeChunk(other, [1], [5, 6, 7]);
  const req = { prefix: BOS, query: storyQuery, policy: 'cacheblend' as const };
  assert.throws(() => fuse(bin, { ...req, chunks: [chunks[0]!, foreign] }),
    (e: unknown) => e instanceof ArgumentError && /chunk 1 was computed by model llama\/L3/.test((e as Error).message));
  const c = chunks[0]!;
  const wrongShape: ChunkKV = { ...c, kv: c.kv.view([5, 2, 63, 4, 8]) };
  assert.throws(() => fuse(bin, { ...req, chunks: [wrongShape] }), (e: unknown) => e instanceof ShapeError && /\[5, 2, 64, 4, 8\]/.test((e as Error).message));
  const f16 = c.kv.cast('f16');
  assert.throws(() => fuse(bin, { ...req, chunks: [{ ...c, kv: f16 }] }), (e: unknown) => e instanceof DTypeError);
  assert.throws(() => repositionChunk(bin, { ...c, kv: f16 }, c.positions), (e: unknown) => e instanceof DTypeError);
  for (const ratio of [-0.1, 1.5, Number.NaN])
    assert.throws(() => fuse(bin, { ...req, chunks, ratio }), (e: unknown) => e instanceof ArgumentError && /ratio must be a number in \[0, 1\]/.test((e as Error).message));
  assert.throws(() => makePolicy('epic', { ratio: 2 }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => fuse(bin, { ...req, chunks, query: new Array(300).fill(5) }),
    (e: unknown) => e instanceof ArgumentError && /557 tokens exceed the model's context of 512/.test((e as Error).message));
  assert.throws(() => precomputeChunk(bin, BOS, new Array(512).fill(5)), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => repositionChunk(bin, c, c.positions.map((p) => p + 500)), (e: unknown) => e instanceof ArgumentError);
  const growing: SelectionPolicy = { name: 'growing', needsReference: false,
    plan: () => ({ checkLayers: [], measureAt: () => null, select: (l) => Int32Array.from({ length: l + 1 }, (_, i) => i) }) };
  assert.throws(() => fuse(bin, { ...req, chunks, policy: growing }), (e: unknown) => e instanceof InternalError && /hidden state/.test((e as Error).message));
  for (const t of [wrongShape.kv, f16, foreign]) t.dispose();
  other.dispose();
});

test.run();
