// The pipelined fusor (fusePipelined) on the CPU: chunk KV arriving layer by layer through a
// LayerSource gives exactly what `fuse` gives with the KV in memory, for every pipelinable policy,
// whatever the prefetch depth, the delivery order or the source's dtype; bad sources are typed errors
// and a failing load leaves nothing behind. Model: stories260K; 3 chunks of 48 tokens of the
// fixture's first story + a 16-token query.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  fuse, fusePipelined, hostLayerSource, memoryLayerSource, precomputeChunk, precomputeChunks, type ChunkKV, type LayerSource, type PolicyName, type StreamedChunk,
} from '../src/cacheblend/index.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ArgumentError, ShapeError } from '../src/runtime/errors.js';
import { Tensor } from '../src/runtime/tensor.js';
import { STORIES_BIN } from './support/models.js';

interface Fixture { cases: { generatedTokens: number[] }[] }
const fx = JSON.parse(readFileSync(new URL('./fixtures/llama2c-stories260K.json', import.meta.url), 'utf8')) as Fixture;
const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const BOS = [model.config.bosId];
const story = fx.cases[0]!.generatedTokens;
const parts = [0, 1, 2].map((i) => story.slice(i * 48, (i + 1) * 48));
const query = story.slice(144, 160);
const chunks = precomputeChunks(model, BOS, parts);

function streamed(cs: ChunkKV[], source: (c: ChunkKV) => LayerSource = (c) => memoryLayerSource(c)): StreamedChunk[] {
  return cs.map((c) => ({ tokens: c.tokens, positions: c.positions, fingerprint: c.fingerprint, source: source(c) }));
}

const CASES: [PolicyName, number | undefined][] = [['full-recompute', undefined], ['full-reuse', undefined], ['prefix-caching', undefined],
  ['cacheblend', 0.15], ['cacheblend-released', 0.16], ['lmcache-v1', 0.15], ['epic', 0.15], ['random', 0.15]];

for (const [policy, ratio] of CASES) {
  test(`${policy}: pipelined = in-memory fuse (logits, selection, ratio)`, async () => {
    const opts = { prefix: BOS, query, policy, ...(ratio === undefined ? {} : { ratio }) };
    const ref = fuse(model, { ...opts, chunks });
    const got = await fusePipelined(model, { ...opts, chunks: streamed(chunks) });
    try {
      assert.equal(Array.from(got.logits), Array.from(ref.logits));
      assert.equal(got.selected.map((s) => Array.from(s)), ref.selected.map((s) => Array.from(s)));
      assert.is(got.ratio, ref.ratio);
      assert.is(got.computeFraction, ref.computeFraction);
      assert.is(got.loadWaitMs.length, model.config.nLayers);
    } finally {
      ref.cache.dispose();
      got.cache.dispose();
    }
  });
}

test('hostLayerSource (the CPU tier) on a CPU model: loadInto and load give the in-memory result', async () => {
  const opts = { prefix: BOS, query, policy: 'cacheblend' as const, ratio: 0.15 };
  const ref = fuse(model, { ...opts, chunks });
  const direct = await fusePipelined(model, { ...opts, chunks: streamed(chunks, (c) => hostLayerSource(c, 'cpu')) });
  // Without loadInto the fusor copies the loaded tensor in itself.
  const viaLoad = await fusePipelined(model, { ...opts, chunks: streamed(chunks, (c) => {
    const h = hostLayerSource(c, 'cpu');
    return { layers: h.layers, load: (l) => h.load(l) };
  }) });
  assert.equal(Array.from(direct.logits), Array.from(ref.logits));
  assert.equal(Array.from(viaLoad.logits), Array.from(ref.logits));
  for (const r of [ref, direct, viaLoad]) r.cache.dispose();
});

test('prefetch depth and out-of-order arrival do not change the result', async () => {
  const opts = { prefix: BOS, query, policy: 'cacheblend' as const, ratio: 0.15 };
  const ref = fuse(model, { ...opts, chunks });
  // Later layers arrive first (delays shrink with the layer), so landing order differs from use order.
  const late = (c: ChunkKV): LayerSource => {
    const inner = memoryLayerSource(c);
    return { layers: inner.layers, load: async (l) => { await new Promise((r) => setTimeout(r, (5 - l) * 3)); return inner.load(l); } };
  };
  for (const prefetch of [1, 3, 5]) {
    const got = await fusePipelined(model, { ...opts, chunks: streamed(chunks, late), prefetch });
    assert.equal(Array.from(got.logits), Array.from(ref.logits), `prefetch ${prefetch}`);
    got.cache.dispose();
  }
  ref.cache.dispose();
});

test('a source that hands f16 KV is cast into the f32 cache (the codec decodes to f16)', async () => {
  const half = (c: ChunkKV): LayerSource => {
    const inner = memoryLayerSource(c);
    return { layers: inner.layers, load: async (l) => { const t = await inner.load(l); try { return t.cast('f16'); } finally { t.dispose(); } } };
  };
  const opts = { prefix: BOS, query, policy: 'full-reuse' as const };
  const ref = fuse(model, { ...opts, chunks });
  const got = await fusePipelined(model, { ...opts, chunks: streamed(chunks, half) });
  let maxDiff = 0, maxRef = 0;
  for (let i = 0; i < ref.logits.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got.logits[i]! - ref.logits[i]!));
    maxRef = Math.max(maxRef, Math.abs(ref.logits[i]!));
  }
  assert.ok(maxDiff > 0, 'f16 rounding must show');
  assert.ok(maxDiff / maxRef < 1e-2, `relative error ${maxDiff / maxRef}`);
  for (const r of [ref, got]) r.cache.dispose();
});

test('bad requests and failing sources are typed errors', async () => {
  const base = { prefix: BOS, query, policy: 'cacheblend' as const };
  const expectReject = async (p: Promise<unknown>, pred: (e: unknown) => boolean, what: string) => {
    try { await p; } catch (e) { assert.ok(pred(e), `${what}: ${String(e)}`); return; }
    assert.unreachable(`${what}: no error`);
  };
  await expectReject(fusePipelined(model, { ...base, policy: 'oracle', chunks: streamed(chunks) }), (e) => e instanceof ArgumentError, 'oracle');
  const short = streamed(chunks).map((c) => ({ ...c, source: { ...c.source, layers: 2 } }));
  await expectReject(fusePipelined(model, { ...base, chunks: short }), (e) => e instanceof ShapeError, 'layer count');
  const wrongShape = streamed(chunks, (c) => ({ layers: c.kv.shape[0]!, load: async () => Tensor.empty([2, 3, 1, 1], { dtype: 'f32' }) }));
  await expectReject(fusePipelined(model, { ...base, chunks: wrongShape }), (e) => e instanceof ShapeError, 'shape');
  const failing = streamed(chunks, (c) => {
    const inner = memoryLayerSource(c);
    return { layers: inner.layers, load: async (l) => { if (l === 3) throw new Error('tier went away'); return inner.load(l); } };
  });
  await expectReject(fusePipelined(model, { ...base, chunks: failing }), (e) => e instanceof Error && /tier went away/.test(e.message), 'failing load');
  await expectReject(fusePipelined(model, { ...base, chunks: streamed(chunks), prefetch: 0 }), (e) => e instanceof ArgumentError, 'prefetch');
  const fp = streamed(chunks).map((c) => ({ ...c, fingerprint: 'other' }));
  await expectReject(fusePipelined(model, { ...base, chunks: fp }), (e) => e instanceof ArgumentError, 'fingerprint');
});

test('a cached prefix KV (precomputed once) gives the same result as prefilling the prefix, in both fusors', async () => {
  const prefix = [...BOS, ...story.slice(200, 212)];
  const cs = precomputeChunks(model, prefix, parts);
  const prefixKV = precomputeChunk(model, [], prefix);
  const opts = { prefix, query, policy: 'cacheblend' as const, ratio: 0.15 };
  const a = fuse(model, { ...opts, chunks: cs });
  const b = fuse(model, { ...opts, chunks: cs, prefixKV });
  const c = await fusePipelined(model, { ...opts, chunks: streamed(cs), prefixKV });
  assert.equal(Array.from(b.logits), Array.from(a.logits));
  assert.equal(Array.from(c.logits), Array.from(a.logits));
  const wrong = precomputeChunk(model, [], [...BOS, ...story.slice(300, 312)]);
  assert.throws(() => fuse(model, { ...opts, chunks: cs, prefixKV: wrong }), (e: unknown) => e instanceof ArgumentError);
  for (const r of [a, b, c]) r.cache.dispose();
  for (const x of [...cs, prefixKV, wrong]) x.dispose();
});

test('rowSqDiff (the device-side deviation) equals the sum of squared differences, set and accumulated', async () => {
  const { rowSqDiff } = await import('../src/runtime/ops.js');
  const a = Float32Array.from({ length: 5 * 7 }, (_, i) => Math.sin(i)), b = Float32Array.from({ length: 35 }, (_, i) => Math.cos(i * 3));
  const ta = Tensor.fromTypedArray(a, [5, 7]), tb = Tensor.fromTypedArray(b, [5, 7]), out = Tensor.empty([5]);
  rowSqDiff(ta, tb, out);
  rowSqDiff(tb, ta, out, true);
  const got = out.toTypedArray() as Float32Array;
  for (let r = 0; r < 5; r++) {
    let s = 0;
    for (let c = 0; c < 7; c++) s += (a[r * 7 + c]! - b[r * 7 + c]!) ** 2;
    assert.ok(Math.abs(got[r]! - 2 * s) <= 1e-5 * s, `row ${r}: ${got[r]} vs ${2 * s}`);
  }
  assert.throws(() => rowSqDiff(ta, Tensor.empty([5, 6]), out), (e: unknown) => e instanceof ShapeError);
  assert.throws(() => rowSqDiff(ta, tb, Tensor.empty([4])), (e: unknown) => e instanceof ShapeError);
  // Indexed: row r of a against row rows[r] of a taller b (a cache slab read in place).
  const tall = Float32Array.from({ length: 9 * 7 }, (_, i) => Math.cos(i * 0.7)), rows = Int32Array.from([8, 0, 3, 3, 6]);
  const tt = Tensor.fromTypedArray(tall, [9, 7]), tr = Tensor.fromTypedArray(rows);
  rowSqDiff(ta, tt, out, false, undefined, tr);
  const got2 = out.toTypedArray() as Float32Array;
  for (let r = 0; r < 5; r++) {
    let s = 0;
    for (let c = 0; c < 7; c++) s += (a[r * 7 + c]! - tall[rows[r]! * 7 + c]!) ** 2;
    assert.ok(Math.abs(got2[r]! - s) <= 1e-5 * s, `indexed row ${r}: ${got2[r]} vs ${s}`);
  }
  assert.throws(() => rowSqDiff(ta, tt, out), (e: unknown) => e instanceof ShapeError);
  assert.throws(() => rowSqDiff(ta, tt, out, false, undefined, Tensor.fromTypedArray(Int32Array.from([0, 1, 2, 9, 4]))),
    (e: unknown) => e instanceof ArgumentError && /outside \[0, 9\)/.test(String(e)));
  for (const t of [ta, tb, out, tt, tr]) t.dispose();
});

test.after(() => {
  for (const c of chunks) c.dispose();
  model.dispose();
});

test.run();
