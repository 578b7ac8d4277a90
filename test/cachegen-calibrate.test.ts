// Per-model level calibration (src/cachegen/calibrate.ts) on stories260K: scaled levels, the
// budget held on the calibration span, the cheapest candidate chosen, and a typed error when no
// candidate reaches the budget.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { calibrateLevel, scaledLevel, cachegenLevel, CACHEGEN_DEFAULT_LEVEL } from '../src/cachegen/index.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ArgumentError } from '../src/runtime/errors.js';
import { STORIES_BIN } from './support/models.js';

const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const base = cachegenLevel(CACHEGEN_DEFAULT_LEVEL);

function span(seed: number, n = 160, cont = 24) {
  const ids = Array.from({ length: n + cont }, (_, i) => (Math.imul(i + seed, 2654435761) >>> 0) % model.config.vocabSize);
  const { cache } = model.prefill(ids.slice(0, n), { logits: 'none', capacity: n });
  const { kv, positions } = cache.exportSpan(0, n);
  cache.dispose();
  const f16 = kv.cast('f16');
  kv.dispose();
  return { kv: f16, positions, continuation: ids.slice(n) };
}

test('scaledLevel multiplies K and V step fractions and widens m where a step falls below range / m', () => {
  const s = scaledLevel(base, 0.5, 0.125, 'x');
  assert.is(s.name, 'x');
  assert.equal(s.k.delta, base.k.delta.map((f) => f * 0.5));
  assert.equal(s.v.anchor, base.v.anchor.map((f) => f * 0.125));
  for (let g = 0; g < 3; g++) {
    const finest = Math.min(s.k.delta[g]!, s.v.delta[g]!);
    assert.is(s.delta[g], finest < 1 / base.delta[g]! ? 31 : base.delta[g]);
  }
  assert.equal(scaledLevel(base, 2, 1).delta, base.delta);  // coarser K: m as it was
  assert.equal(scaledLevel(base, 1, 1).delta, base.delta);
  assert.throws(() => scaledLevel(base, 0, 1), (e: unknown) => e instanceof ArgumentError);
});

const grid = { kScales: [1, 0.5], vScales: [1, 0.5, 0.25, 0.125] };

test('scaledLevel takes one factor per layer third', () => {
  const s = scaledLevel(base, [1, 2, 0.5], [0.25, 1, 1]);
  assert.equal(s.k.anchor, base.k.anchor.map((f, g) => f * [1, 2, 0.5][g]!));
  assert.equal(s.v.delta, base.v.delta.map((f, g) => f * [0.25, 1, 1][g]!));
  assert.equal(scaledLevel(base, [2, 2, 2], [0.5, 0.5, 0.5]), scaledLevel(base, 2, 0.5, 'default-k2,2,2-v0.5,0.5,0.5'));
});

test('calibrateLevel: within the budget on its span, the cheapest passing candidate, finer V for a tighter budget', () => {
  const s = span(11);
  try {
    const loose = calibrateLevel(model, [s], { base, budget: 0.05, ...grid, refine: false });
    const tight = calibrateLevel(model, [s], { base, budget: 0.01, ...grid, refine: false });
    for (const c of [loose, tight]) {
      assert.ok(c.point.kl <= c.budget, `${c.point.kl} > ${c.budget}`);
      const passing = c.tried.filter((p) => p.kl <= c.budget);
      assert.is(c.point.bitsPerValue, Math.min(...passing.map((p) => p.bitsPerValue)));
      assert.is(c.level.name, `${base.name}-calibrated`);
    }
    assert.ok(tight.point.bitsPerValue >= loose.point.bitsPerValue);
    // Each kScale's walk stops at its first passing V scale: no two passing points share a kScale.
    const ks = tight.tried.filter((p) => p.kl <= tight.budget).map((p) => p.kScale[0]);
    assert.is(new Set(ks).size, ks.length);
    assert.throws(() => calibrateLevel(model, [s], { base, budget: 1e-12, kScales: [1], vScales: [1, 0.5] }),
      (e: unknown) => e instanceof ArgumentError && /reaches KL/.test((e as Error).message));
    assert.throws(() => calibrateLevel(model, [], { base, budget: 0.1 }), (e: unknown) => e instanceof ArgumentError);
  } finally {
    s.kv.dispose();
  }
});

test('calibrateLevel refines layer thirds one at a time: no more bits, still within the budget, only coarser', () => {
  const s = span(23);
  try {
    const flat = calibrateLevel(model, [s], { base, budget: 0.01, ...grid, refine: false });
    const refined = calibrateLevel(model, [s], { base, budget: 0.01, ...grid });
    assert.ok(refined.point.kl <= refined.budget);
    assert.ok(refined.point.bitsPerValue <= flat.point.bitsPerValue);
    for (let g = 0; g < 3; g++) {
      assert.ok(refined.point.kScale[g]! >= flat.point.kScale[g]!);
      assert.ok(refined.point.vScale[g]! >= flat.point.vScale[g]!);
    }
    // The refined level is the one its point describes.
    assert.equal(refined.level.v.delta, scaledLevel(base, refined.point.kScale, refined.point.vScale).v.delta);
    console.log(`  refine: ${flat.point.bitsPerValue.toFixed(3)} -> ${refined.point.bitsPerValue.toFixed(3)} bits (k ${refined.point.kScale.join('/')}, v ${refined.point.vScale.join('/')})`);
  } finally {
    s.kv.dispose();
  }
});

test.run();
