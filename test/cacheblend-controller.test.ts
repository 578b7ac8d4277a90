// The loading controller (ratio that hides loading, cheapest tier that hides a ratio), the recompute
// profile measured through the layer API, and the in-memory LayerSource.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  chooseRatio, chooseTier, fitRecomputeProfile, hidingRatio, memoryLayerSource, precomputeChunk, profileRecompute,
  type StorageTier,
} from '../src/cacheblend/index.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ArgumentError } from '../src/runtime/errors.js';
import { STORIES_BIN } from './support/models.js';

const profile = { fixedS: 1e-3, perTokenS: 1e-5 };  // t(r) = 1 ms + 10 ms * r for N = 1000
const N = 1000;
const MB = 1e6;
const tiers: StorageTier[] = [
  { name: 'gpu', bandwidth: 1000 * MB * 1000, latencyS: 0, costPerByte: 100 },    // 1 TB/s
  { name: 'cpu', bandwidth: 20 * MB * 1000, latencyS: 1e-5, costPerByte: 10 },     // 20 GB/s
  { name: 'disk', bandwidth: 2 * MB * 1000, latencyS: 1e-4, costPerByte: 1 },      // 2 GB/s
];

test('fitRecomputeProfile recovers a line exactly; needs two distinct points', () => {
  const p = fitRecomputeProfile([{ tokens: 0, seconds: 0.002 }, { tokens: 100, seconds: 0.003 }, { tokens: 200, seconds: 0.004 }]);
  assert.ok(Math.abs(p.fixedS - 0.002) < 1e-12 && Math.abs(p.perTokenS - 1e-5) < 1e-15);
  assert.throws(() => fitRecomputeProfile([{ tokens: 5, seconds: 1 }]), (e: unknown) => e instanceof ArgumentError);
});

test('ratio = max(r*, the ratio that hides loading)', () => {
  // 12 MB per layer from the 2 GB/s disk: 6 ms + 0.1 ms latency -> r = (6.1 - 1) / 10 = 0.51
  const r = hidingRatio(profile, tiers[2]!, 12 * MB, N);
  assert.ok(Math.abs(r - 0.51) < 1e-9, `${r}`);
  assert.ok(Math.abs(chooseRatio(0.15, profile, tiers[2]!, 12 * MB, N) - 0.51) < 1e-9);
  assert.is(chooseRatio(0.7, profile, tiers[2]!, 12 * MB, N), 0.7);
  assert.is(hidingRatio(profile, tiers[0]!, 12 * MB, N), 0);  // 12 us from the GPU tier: always hidden
  assert.is(hidingRatio(profile, tiers[2]!, 1000 * MB, N), 1);  // cannot be hidden at all
  assert.throws(() => chooseRatio(1.5, profile, tiers[0]!, MB, N), (e: unknown) => e instanceof ArgumentError);
});

test('the cheapest tier that hides the ratio; the fastest when none does', () => {
  // r = 0.15: budget 2.5 ms. 12 MB: disk 6.1 ms (no), cpu 0.61 ms (yes), gpu (yes, dearer) -> cpu
  assert.is(chooseTier(tiers, 0.15, profile, 12 * MB, N).tier.name, 'cpu');
  // r = 0.6: budget 7 ms -> disk hides it and is cheapest
  assert.is(chooseTier(tiers, 0.6, profile, 12 * MB, N).tier.name, 'disk');
  const none = chooseTier(tiers, 0, profile, 5000 * MB, N);
  assert.equal([none.tier.name, none.hidden], ['gpu', false]);
});

test('profileRecompute on stories260K: positive per-token cost; memoryLayerSource yields each layer', async () => {
  const m = Model.fromWeights(await loadLlama2c(STORIES_BIN));
  const p = profileRecompute(m, { contextTokens: 256, queryTokens: 16, reps: 3 });
  assert.ok(p.perTokenS > 0 && p.fixedS >= 0, JSON.stringify(p));
  const c = precomputeChunk(m, [1], [5, 6, 7, 8, 9]);
  const src = memoryLayerSource(c);
  assert.is(src.layers, 5);
  const l3 = await src.load(3);
  assert.equal(l3.shape, [2, 5, 4, 8]);
  const all = c.kv.toTypedArray() as Float32Array;
  const per = 2 * 5 * 4 * 8;
  assert.equal(Array.from(l3.toTypedArray() as Float32Array), Array.from(all.subarray(3 * per, 4 * per)));
  l3.dispose();
  c.dispose();
  m.dispose();
});

test.run();
