// The CPU engine against llama2.c's run.c (test/fixtures/llama2c-stories260K.json, recorded with
// the command in its `command` field), GGUF vs llama2.c loading, and the layer-wise API's causality
// by absolute position.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ArgumentError, DeviceError, cudaAvailable } from '../src/index.js';
import { generate } from '../src/model/generate.js';
import { loadGguf } from '../src/model/gguf.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import type { ModelConfig } from '../src/model/config.js';
import { STORIES_BIN, STORIES_GGUF } from './support/models.js';
import { relErr } from './support/reference.js';

interface Fixture {
  cases: { prompt: string; promptTokens: number[]; generatedTokens: number[]; stopReason: string }[];
  logits: { tokens: number[]; positions: number[][] };
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/llama2c-stories260K.json', import.meta.url), 'utf8')) as Fixture;

const bin = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const gguf = Model.fromWeights((await loadGguf(STORIES_GGUF)).weights);


test('logits of the first 8 positions match run.c (relative error <= 1e-5; fixture has 6 digits)', () => {
  const r = bin.prefill(fx.logits.tokens, { logits: 'all' });
  const V = bin.config.vocabSize;
  fx.logits.positions.forEach((ref, p) => {
    const e = relErr(r.logits.subarray(p * V, (p + 1) * V), ref);
    assert.ok(e <= 1e-5, `position ${p}: relative error ${e}`);
  });
  r.cache.dispose();
});

test('greedy generation equals run.c token for token on all four prompts (>= 189 tokens each)', () => {
  for (const c of fx.cases) {
    const stop = c.stopReason.startsWith('bos:') ? [1] : [];
    const r = generate(bin, c.promptTokens, { maxTokens: c.generatedTokens.length + (stop.length ? 1 : 0), stopTokens: stop });
    assert.equal(r.tokens, c.generatedTokens, `prompt ${JSON.stringify(c.prompt)}`);
    if (stop.length) assert.is(r.stopReason, 'stop-token', 'run.c stopped on BOS; so must kvlab');
    assert.ok(r.tokens.length >= 189);
    r.cache.dispose();
  }
});

test('stories260K from GGUF and from the llama2.c pair: identical logits and tokens', () => {
  const toks = fx.cases[1]!.promptTokens;
  const a = bin.prefill(toks, { logits: 'all' });
  const b = gguf.prefill(toks, { logits: 'all' });
  assert.equal(Array.from(a.logits), Array.from(b.logits));
  const ga = generate(bin, toks, { maxTokens: 64 });
  const gb = generate(gguf, toks, { maxTokens: 64 });
  assert.equal(ga.tokens, gb.tokens);
  for (const r of [a, b, ga, gb]) r.cache.dispose();
});

test('prefill in two parts equals prefill in one (decode continues the cache)', () => {
  const toks = fx.cases[2]!.promptTokens;
  const one = bin.prefill(toks, { logits: 'all' });
  const first = bin.prefill(toks.slice(0, 5));
  const two = bin.prefill(toks.slice(5), { past: first.cache, logits: 'all' });
  const V = bin.config.vocabSize;
  assert.ok(relErr(two.logits, one.logits.subarray(5 * V)) < 1e-5);
  one.cache.dispose();
  first.cache.dispose();
});

test('causality is by absolute position: K/V in shuffled slots give the same logits', () => {
  const toks = fx.cases[3]!.promptTokens;
  const n = toks.length;
  const ref = bin.prefill(toks, { logits: 'all' });
  // The same tokens appended in reverse slot order, each at its true position.
  const order = Array.from({ length: n }, (_, i) => n - 1 - i);
  const r = bin.prefill(order.map((i) => toks[i]!), { positions: order, logits: 'all' });
  const V = bin.config.vocabSize;
  for (let k = 0; k < n; k++) {
    const i = order[k]!;
    const e = relErr(r.logits.subarray(k * V, (k + 1) * V), ref.logits.subarray(i * V, (i + 1) * V));
    assert.ok(e < 1e-5, `token at position ${i}: ${e}`);
  }
  ref.cache.dispose();
  r.cache.dispose();
});

test('layer-wise recompute of chosen tokens at their positions reproduces full prefill', () => {
  const toks = fx.cases[2]!.promptTokens;
  const n = toks.length;
  const ref = bin.prefill(toks, { logits: 'all' });
  const cache = bin.newCache(n);
  // Start from a cache whose K/V are garbage for every token (a wrong prefix), then recompute
  // all tokens layer by layer in an interleaved order: the result must equal full prefill.
  const junk = bin.prefill(toks.map((t) => (t + 7) % 512), { past: cache, logits: 'none' });
  const slots = [...junk.slots].reverse();
  const positions = slots.map((s) => cache.positions[s]!);
  const x = bin.embed(slots.map((s) => toks[s]!));
  const batch = bin.batch(positions, slots);
  for (let l = 0; l < bin.config.nLayers; l++) bin.layer(l, x, batch, cache);
  const logits = bin.head(x).toTypedArray() as Float32Array;
  const V = bin.config.vocabSize;
  slots.forEach((s, k) => {
    const e = relErr(logits.subarray(k * V, (k + 1) * V), ref.logits.subarray(s * V, (s + 1) * V));
    assert.ok(e < 1e-5, `slot ${s}: ${e}`);
  });
  batch.dispose();
  x.dispose();
  cache.dispose();
  ref.cache.dispose();
});

test('seeded sampling: same seed same tokens; top-p and temperature change them', () => {
  const toks = fx.cases[1]!.promptTokens;
  const a = generate(bin, toks, { maxTokens: 40, temperature: 1, topP: 0.9, seed: 42 });
  const b = generate(bin, toks, { maxTokens: 40, temperature: 1, topP: 0.9, seed: 42 });
  const c = generate(bin, toks, { maxTokens: 40, temperature: 1, topP: 0.9, seed: 43 });
  const g = generate(bin, toks, { maxTokens: 40 });
  assert.equal(a.tokens, b.tokens);
  assert.not.equal(a.tokens, c.tokens);
  assert.not.equal(a.tokens, g.tokens);
  const streamed: number[] = [];
  const s = generate(bin, toks, { maxTokens: 10, onToken: (t) => { streamed.push(t); } });
  assert.equal(streamed, s.tokens);
  for (const r of [a, b, c, g, s]) r.cache.dispose();
});

test('random-initialised models are deterministic per seed, for GQA, QKV bias and llama3 RoPE', () => {
  const cfg: ModelConfig = {
    architecture: 'qwen2', dim: 96, hiddenDim: 160, nLayers: 2, nHeads: 6, nKvHeads: 2, headDim: 16, vocabSize: 300,
    maxSeqLen: 256, normEps: 1e-6, ropeTheta: 500000, tiedEmbeddings: false, qkvBias: true, bosId: 1, eosId: 2,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  };
  const m1 = Model.random(cfg, { seed: 5 });
  const m2 = Model.random(cfg, { seed: 5 });
  const m3 = Model.random(cfg, { seed: 6 });
  const toks = [1, 17, 250, 3, 99, 42];
  const a = m1.prefill(toks), b = m2.prefill(toks), c = m3.prefill(toks);
  assert.equal(Array.from(a.logits), Array.from(b.logits));
  assert.not.equal(Array.from(a.logits), Array.from(c.logits));
  assert.ok(a.logits.every(Number.isFinite));
  for (const m of [m1, m2, m3]) m.dispose();
});

test('bad inputs: token out of range, prompt beyond the context, CUDA without a GPU', () => {
  assert.throws(() => bin.prefill([1, 512]), (e: unknown) => e instanceof ArgumentError && /token id 512 at index 1 is outside the vocabulary \[0, 512\)/.test((e as Error).message));
  assert.throws(() => generate(bin, new Array(513).fill(1)), (e: unknown) => e instanceof ArgumentError && /513 tokens but the model's context is 512/.test((e as Error).message));
  assert.throws(() => bin.prefill([1, 2], { positions: [0, 600] }), (e: unknown) => e instanceof ArgumentError && /beyond the model's context/.test((e as Error).message));
  if (!cudaAvailable()) {
    assert.throws(() => Model.random(bin.config, { device: 'cuda:0' }), (e: unknown) => e instanceof DeviceError && /CUDA is not available/.test((e as Error).message));
  }
  // still alive and correct afterwards
  const r = bin.prefill(fx.logits.tokens.slice(0, 2));
  assert.ok(r.logits.every(Number.isFinite));
  r.cache.dispose();
});

test.run();
