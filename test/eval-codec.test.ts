// Codec evaluation (src/eval/codec-eval.ts) and CacheGen's observation rows (observations.ts) on
// stories260K with tiny contexts from datasets/stories260k-codec, using the codec test doubles of
// test/support/codec-double.ts (never shipped): f32 identity, fp16, int8 per token, and one that
// loses the KV.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readCodecContextSet } from '../src/eval/codec-contexts.js';
import { codecEval } from '../src/eval/codec-eval.js';
import { cachegenObservations, layerThird } from '../src/eval/observations.js';
import { modelFingerprint } from '../src/model/fingerprint.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { ArgumentError } from '../src/runtime/errors.js';
import { codecDouble as double } from './support/codec-double.js';
import { STORIES_BIN } from './support/models.js';

const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const set = readCodecContextSet(fileURLToPath(new URL('../datasets/stories260k-codec/v1.json', import.meta.url)));
const contexts = set.contexts.slice(0, 2).map((c, i) => ({ id: c.id, context: c.context.slice(0, 37 + 20 * i), continuation: c.continuation.slice(0, 12) }));

test('codec eval: identity is exact, fp16 near-exact, int8 coarser, a lossy-to-zero codec is caught', () => {
  const codecs = [double('f32-id', 'f32'), double('fp16', 'f16'), double('int8-token', 'int8'), double('zero', 'zero')];
  const r = codecEval(model, contexts, codecs);
  const row = (c: string, l?: string) => r.rows.find((x) => x.codec === c && (l === undefined || x.level === l))!;
  assert.is(r.rows.length, 5);
  const values = 5 * 2 * (37 + 57) * 4 * 8;
  for (const x of r.rows) { assert.is(x.values, values); assert.is(x.contexts, 2); assert.is(x.positions, 24); }
  const id = row('f32-id');
  assert.equal([id.kl, id.pplDeltaPct, id.top1, id.kvRelErr], [0, 0, 1, 0]);
  assert.is(id.bytes, 2 * 13 + 4 * (37 + 57) + 4 * values);
  assert.ok(Math.abs(id.bitsPerValue - (8 * id.bytes) / values) < 1e-12);
  const h = row('fp16');
  assert.ok(h.kvRelErr > 0 && h.kvRelErr < 1e-3, `fp16 relErr ${h.kvRelErr}`);
  assert.ok(h.kl < 1e-5 && h.top1 === 1, `fp16 kl ${h.kl}`);
  assert.ok(Math.abs(h.ratioVsFp16 - 16 / h.bitsPerValue) < 1e-12 && h.ratioVsFp16 < 1);
  const q8 = row('int8-token', 'q8'), q6 = row('int8-token', 'q6');
  assert.is(r.int8Reference?.level, 'q8');
  assert.is(q8.ratioVsInt8, 1);
  assert.ok(q8.isDefault && !q6.isDefault && q6.levelIndex === 1);
  assert.ok(q8.kl > h.kl && q6.kl > q8.kl, `kl fp16 ${h.kl} q8 ${q8.kl} q6 ${q6.kl}`);
  const z = row('zero');
  assert.ok(z.kl > 10 * q6.kl && z.kl > 0.1 && z.top1 < 1, `zero kl ${z.kl}`);
  assert.ok(Math.abs(z.pplExact - id.pplExact) < 1e-12, 'the exact run is the same for every codec');
  assert.equal(r.profiles, []);
  assert.ok(r.rows.every((x) => x.profile === null));
});

test('codec eval: a profile variant adds a row and a profiles entry; profiles of another model are refused', () => {
  const fp16 = double('fp16', 'f16');
  const v = { codec: 'fp16', level: 'only', name: 'p1', fingerprint: '', bytes: 1000, builtFromTokens: 50, encodeOptions: {}, decodeOptions: {} };
  const r = codecEval(model, contexts.slice(0, 1), [fp16], { profiles: [{ ...v, fingerprint: modelFingerprint(model.config) }] });
  assert.equal(r.rows.map((x) => [x.profile, x.isDefault]), [[null, true], ['p1', false]]);
  assert.is(r.rows[1]!.kl, r.rows[0]!.kl);
  assert.equal(r.profiles, [{ codec: 'fp16', level: 'only', name: 'p1', fingerprint: modelFingerprint(model.config), bytes: 1000, builtFromTokens: 50,
    amortisedOverTokens: 37, bitsPerValueAmortised: 8000 / r.rows[0]!.values }]);
  assert.throws(() => codecEval(model, contexts, [fp16], { profiles: [{ ...v, fingerprint: 'other' }] }), (e: unknown) => e instanceof ArgumentError);
});

test('codec eval: typed errors for unknown levels and oversize contexts; dataset validation', () => {
  assert.throws(() => codecEval(model, contexts, [double('fp16', 'f16')], { levels: { fp16: ['nope'] } }), (e: unknown) => e instanceof ArgumentError);
  const long = [{ id: 'x', context: Array(500).fill(5), continuation: Array(20).fill(5) }];
  assert.throws(() => codecEval(model, long, [double('fp16', 'f16')]), (e: unknown) => e instanceof ArgumentError);
  assert.is(set.contexts.length, 8);
  assert.ok(set.contexts.every((c) => c.context.length <= 448 && c.continuation.length === 64 && c.context[0] === 1));
});

test('observations: histogram, variance, layer-group sensitivity and entropy rows are consistent', () => {
  const o = cachegenObservations(model, [{ id: 'o', context: set.contexts[0]!.context.slice(0, 61), continuation: set.contexts[0]!.continuation.slice(0, 12) }], { bits: [3, 6] });
  assert.is(o.distribution.length, 5 * 2 * 2 * 40);
  for (const layer of [0, 4]) for (const series of ['raw', 'delta']) {
    const bins = o.distribution.filter((r) => r.layer === layer && r.kv === 'K' && r.series === series);
    const mass = bins.reduce((a, r) => a + r.density * (r.binHi - r.binLo), 0);
    assert.ok(mass <= 1 + 1e-9 && mass > (series === 'raw' ? 0.99 : 0.5), `${series} mass ${mass}`);
  }
  assert.is(o.deltaVariance.length, 10);
  for (const r of o.deltaVariance) assert.ok(Math.abs(r.varianceRatio - r.rawVariance / r.deltaVariance) < 1e-12 && r.rawVariance > 0);
  assert.equal([0, 1, 2, 3, 4].map((l) => layerThird(l, 5)), [0, 0, 1, 1, 2]);
  assert.equal(o.sensitivity.map((r) => `${r.layers}@${r.bits}`), ['0-1@3', '0-1@6', '2-3@3', '2-3@6', '4-4@3', '4-4@6']);
  for (const g of [0, 1, 2]) {
    const [b3, b6] = o.sensitivity.filter((r) => r.group === g);
    assert.ok(b3!.kl > b6!.kl && b6!.kl > 0, `group ${g}: kl at 3 bits ${b3!.kl}, 6 bits ${b6!.kl}`);
  }
  for (const series of ['raw', 'delta'] as const) {
    const e = (g: string) => o.entropy.find((r) => r.series === series && r.grouping === g)!;
    // Conditional entropy never exceeds the global one (a property of H, so a broken grouping shows here).
    assert.ok(e('layer-channel').bitsPerValue <= e('global').bitsPerValue + 1e-9 && e('token').bitsPerValue <= e('global').bitsPerValue + 1e-9);
    assert.is(e('layer-channel').groups, 5 * 2 * 32);
    assert.is(e('token').values, 5 * 2 * 32 * (61 - 7));
  }
});

test.run();
