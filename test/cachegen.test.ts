// The KV codecs (src/cachegen, native/codec) on the CPU: the rANS coder's lossless symbol round trip
// (random streams, empty streams, single-symbol and maximal alphabets, 12- and 16-bit tables), the
// log-code tables, every codec's encode -> decode error bound on random KV (odd shapes) and on
// stories260K KV, profiles, container corruption (every truncation, byte flips, wrong fingerprint,
// wrong codec) -> typed errors, determinism, the registry, and the CPU path of the benchmark.
// Tolerance policy: symbols and containers exact; dequantised KV within each codec's bound below.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CACHEGEN_LEVELS, CodecProfile, codecBench, type CachegenLevel, codecNames, codecs, containerStats, getCodec, inspectContainer, UnknownCodecError,
  type KVSpan,
} from '../src/cachegen/index.js';
import { codecAddon } from '../src/cachegen/native.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { modelFingerprint } from '../src/model/fingerprint.js';
import { ArgumentError, DeviceError, FormatError, NotFoundError } from '../src/runtime/errors.js';
import { Tensor } from '../src/runtime/tensor.js';
import { cudaAvailable } from '../src/runtime/device.js';
import { STORIES_BIN } from './support/models.js';
import { f16Bits, f16ToNumber, relErr, rng } from './support/reference.js';

const addon = codecAddon();

function randomSpan(shape: [number, number, number, number], seed: number, fingerprint = 'test/model'): KVSpan {
  const [L, T, H, D] = shape;
  const r = rng(seed);
  const n = L * 2 * T * H * D;
  const x = new Float32Array(n);
  // Smooth in tokens (as real KV is), a few outlier channels, some noise.
  for (let l = 0; l < L * 2; l++)
    for (let c = 0; c < H * D; c++) {
      const amp = c % 7 === 3 ? 8 : 1;
      const phase = r() * 6.28, freq = 0.05 + r() * 0.3;
      for (let t = 0; t < T; t++) x[(l * T + t) * H * D + c] = amp * (Math.sin(phase + freq * t) + 0.3 * (r() * 2 - 1));
    }
  return { kv: Tensor.fromTypedArray(x, [L, 2, T, H, D]), positions: Int32Array.from({ length: T }, (_, i) => 7 + i), fingerprint };
}

function roundTripErr(span: KVSpan, name: string, level?: string, extra: Record<string, unknown> = {}): { err: number; bits: number; bytes: Uint8Array } {
  const codec = getCodec(name);
  const bytes = (codec.encode as (s: KVSpan, o: object) => Uint8Array)(span, { level, ...extra });
  const dec = (codec.decode as (b: Uint8Array, o: object) => ReturnType<typeof codec.decode>)(bytes, { dtype: 'f32', ...extra });
  assert.equal([...dec.positions], [...span.positions]);
  assert.is(dec.fingerprint, span.fingerprint);
  assert.is(dec.codec, name);
  assert.is(dec.level, level ?? codec.defaultLevel);
  assert.equal(dec.kv.shape, span.kv.shape);
  const err = relErr(dec.kv.toFloat32(), span.kv.toFloat32());
  dec.kv.dispose();
  return { err, bits: containerStats(bytes).bitsPerValue, bytes };
}

// ---- entropy coder ---------------------------------------------------------------------------------

function normalisedFreqs(weights: number[], bits: number): Uint32Array {
  const total = 2 ** bits;
  const w = weights.reduce((a, b) => a + b, 0);
  const f = Uint32Array.from(weights, (x) => (x > 0 ? Math.max(1, Math.floor((x * total) / w)) : 0));
  let sum = f.reduce((a, b) => a + b, 0);
  const big = f.indexOf(Math.max(...f));
  f[big]! += total - sum;
  sum = f.reduce((a, b) => a + b, 0);
  assert.is(sum, total);
  return f;
}

test('rANS: random symbol streams round-trip exactly (12- and 16-bit tables)', () => {
  const r = rng(1);
  for (let k = 0; k < 60; k++) {
    const bits = k % 2 ? 16 : 12;
    const n = 1 + Math.floor(r() * (bits === 12 ? 63 : 256));
    const weights = Array.from({ length: n }, () => (r() < 0.2 ? 0 : Math.floor(r() ** 4 * 1000)));
    weights[Math.floor(r() * n)] = 1000;
    const freqs = normalisedFreqs(weights, bits);
    const live = [...freqs.keys()].filter((s) => freqs[s]! > 0);
    const len = Math.floor(r() * 3000);
    const sym = Uint8Array.from({ length: len }, () => live[Math.floor(r() ** 2 * live.length)]!);
    const out = addon.ransRoundTrip(sym, freqs, bits);
    assert.ok(out.clean, `stream ${k} decodes cleanly`);
    assert.equal([...out.decoded], [...sym]);
    assert.ok(out.bytes.length <= 4 + 2 * len);
  }
});

test('rANS: empty stream, single-symbol alphabet, maximal alphabet, skewed and uniform tables', () => {
  const empty = addon.ransRoundTrip(new Uint8Array(0), Uint32Array.from([4096]), 12);
  assert.ok(empty.clean);
  assert.is(empty.bytes.length, 4);
  const single = addon.ransRoundTrip(new Uint8Array(5000), Uint32Array.from([4096]), 12);
  assert.ok(single.clean);
  assert.is(single.bytes.length, 4, 'a certain symbol costs no bits');
  const max = Uint32Array.from({ length: 256 }, () => 256);
  const sym = Uint8Array.from({ length: 4096 }, (_, i) => (i * 97) % 256);
  const m = addon.ransRoundTrip(sym, max, 16);
  assert.ok(m.clean);
  assert.equal([...m.decoded], [...sym]);
  assert.ok(Math.abs(m.bytes.length - 4096) < 16, 'uniform 256 symbols cost 8 bits each');
  // Every symbol has the smallest possible frequency but one.
  const tiny = new Uint32Array(63).fill(1);
  tiny[0] = 4096 - 62;
  const rare = Uint8Array.from({ length: 2000 }, (_, i) => (i % 50 === 0 ? 1 + (i % 62) : 0));
  const t = addon.ransRoundTrip(rare, tiny, 12);
  assert.ok(t.clean);
  assert.equal([...t.decoded], [...rare]);
});

test('rANS: frequencies that do not sum to 2^bits or symbols outside the table are ArgumentErrors', () => {
  assert.throws(() => addon.ransRoundTrip(new Uint8Array(3), Uint32Array.from([100]), 12), (e: unknown) => (e as { code?: string }).code === 'KVLAB_ARG');
  assert.throws(() => addon.ransRoundTrip(Uint8Array.from([1]), Uint32Array.from([4096, 0]), 12), (e: unknown) => (e as { code?: string }).code === 'KVLAB_ARG');
});

test('log-code tables: frequencies sum to 4096, zero exactly where the code is zero', () => {
  const r = rng(2);
  for (let k = 0; k < 200; k++) {
    const n = 1 + Math.floor(r() * 63);
    const codes = Uint8Array.from({ length: n }, () => (r() < 0.3 ? 0 : Math.floor(r() * 256)));
    const f = addon.freqsFromCodes(codes);
    const sum = f.reduce((a, b) => a + b, 0);
    if (codes.every((c) => c === 0)) assert.is(sum, 0);
    else {
      assert.is(sum, 4096);
      codes.forEach((c, i) => assert.is(f[i]! > 0, c > 0));
    }
  }
  const all = addon.freqsFromCodes(new Uint8Array(63).fill(255));
  assert.ok(all.every((x) => x === 65 || x === 66), 'equal codes, equal frequencies (the remainder goes to one)');
});

// ---- codecs on random KV ------------------------------------------------------------------------------

const BOUNDS: [string, string | undefined, number][] = [
  ['fp16', undefined, 1e-3],
  ['int8-token', undefined, 1 / 127],
  ['int8-channel', undefined, 1 / 127],
  ['int4-token', undefined, 1 / 7],
  ['int4-channel', undefined, 1 / 7],
  ['kivi2', 'g32', 0.5],
  ['kivi2', 'g128', 0.5],
  ['kivi2', 'g32-r128', 0.5],
  ['kivi2', 'g32-r32', 0.5],
  ['cachegen-released', undefined, 1 / 15],
  ...CACHEGEN_LEVELS.map((l) => ['cachegen', l.name, cachegenBound(l)] as [string, string, number]),
];

/**
 * Every cachegen value is its anchor's or its delta's rounding away: at most half a step, and a step
 * is at most the larger of (fraction x K|V scale x the plane's mean channel max) and (channel max / m),
 * rounded up to bf16 (x 1.008). Relative to the global max that is below this bound.
 */
function cachegenBound(l: CachegenLevel): number {
  const f = Math.max(...l.k.anchor, ...l.k.delta, ...l.v.anchor, ...l.v.delta);
  const m = Math.min(...l.anchor, ...l.delta);
  return (Math.max(f, 1 / m) / 2) * 1.008;
}

test('every codec: encode -> decode within its bound on random KV of odd shapes', () => {
  for (const shape of [[3, 37, 2, 5], [1, 1, 1, 1], [2, 23, 3, 8]] as [number, number, number, number][]) {
    const span = randomSpan(shape, shape[1]);
    for (const [name, level, bound] of BOUNDS) {
      const { err } = roundTripErr(span, name, level);
      assert.ok(err <= bound, `${name}/${level} on [${shape}]: relative error ${err} > ${bound}`);
    }
    span.kv.dispose();
  }
});

test('kivi2 residual (KIVI): K keeps its last T mod R tokens, V its last R, as fp16; the rest is 2-bit', () => {
  const [L, T, H, D] = [2, 70, 2, 4];
  const span = randomSpan([L, T, H, D], 3);
  const codec = getCodec('kivi2');
  const x = span.kv.toFloat32();
  const plain = codec.encode(span, { level: 'g32' }), windowed = codec.encode(span, { level: 'g32-r32' });
  const dec = codec.decode(windowed, { dtype: 'f32' });
  const y = dec.kv.toFloat32();
  const C = H * D, f16 = (v: number) => f16ToNumber(f16Bits(v));
  for (let l = 0; l < L; l++)
    for (const [part, full] of [[0, T % 32], [1, 32]] as const) // K: 70 mod 32 = 6 tokens, V: 32
      for (let t = 0; t < T; t++)
        for (let c = 0; c < C; c++) {
          const i = ((l * 2 + part) * T + t) * C + c;
          if (t >= T - full) assert.is(y[i], f16(x[i]!), `plane ${l * 2 + part} token ${t}: fp16 residual`);
        }
  // 2-bit + fp16 for (6 + 32) of 70 tokens per layer pair: larger than all 2-bit, more accurate
  assert.ok(windowed.length > plain.length);
  const d0 = codec.decode(plain, { dtype: 'f32' });
  const sq = (a: Float32Array) => a.reduce((acc, v, i) => acc + (v - x[i]!) ** 2, 0);
  assert.ok(sq(y) < sq(d0.kv.toFloat32()), 'the residual lowers the squared error');
  // shorter than R: all fp16
  const short = randomSpan([1, 20, 1, 4], 4);
  const ds = codec.decode(codec.encode(short, { level: 'g32-r32' }), { dtype: 'f32' });
  const xs = short.kv.toFloat32(), ys = ds.kv.toFloat32();
  xs.forEach((v, i) => assert.is(ys[i], f16(v)));
  for (const t of [span.kv, dec.kv, d0.kv, short.kv, ds.kv]) t.dispose();
});

/** A container's SIDE section (directory entry 3 of the header: FORMAT.md). */
function sideSection(bytes: Uint8Array): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const off = dv.getUint32(16 + 2 * 16 + 4, true), len = dv.getUint32(16 + 2 * 16 + 8, true);
  return bytes.subarray(off, off + len);
}
/** Per plane, whether it codes every token directly (bit 7 of its mD byte in META's config: FORMAT.md). */
function rawPlanes(bytes: Uint8Array, planes: number): boolean[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const meta = dv.getUint32(16 + 4, true);
  const fpLen = dv.getUint16(meta + 20, true);
  const config = meta + 22 + fpLen + 4;
  return Array.from({ length: planes }, (_, p) => (bytes[config + 12 + 2 * p + 1]! & 0x80) !== 0);
}
const bf16 = (lo: number, hi: number) => new Float32Array(new Uint32Array([((hi << 8) | lo) << 16]).buffer)[0]!;

test('cachegen: every decoded value is within half its channel step (anchors: anchor step, others and raw planes: delta step)', () => {
  const [L, T, H, D] = [2, 53, 2, 6];
  const span = randomSpan([L, T, H, D], 12);
  const x = span.kv.toFloat32();
  const C = H * D, planes = L * 2;
  let rawSeen = 0;
  for (const level of getCodec('cachegen').levels) {
    const bytes = getCodec('cachegen').encode(span, { level });
    const side = sideSection(bytes);
    const raw = rawPlanes(bytes, planes);
    const y = getCodec('cachegen').decode(bytes, { dtype: 'f32' });
    const out = y.kv.toFloat32();
    y.kv.dispose();
    let worst = 0;
    for (let p = 0; p < planes; p++)
      for (let c = 0; c < C; c++) {
        const i = p * C + c;
        const sa = bf16(side[2 * i]!, side[2 * i + 1]!), sd = bf16(side[2 * (planes * C + i)]!, side[2 * (planes * C + i) + 1]!);
        for (let t = 0; t < T; t++) {
          const e = (p * T + t) * C + c;
          const step = t % 10 === 0 && !raw[p] ? sa : sd;
          worst = Math.max(worst, Math.abs(out[e]! - x[e]!) / (step / 2 + 1e-6 * Math.abs(x[e]!) + 1e-30));
        }
      }
    assert.ok(worst <= 1, `${level}: an error of ${worst} half-steps`);
    rawSeen += raw.filter(Boolean).length;
  }
  assert.ok(rawSeen > 0, 'no plane chose raw coding: the raw path went untested');
  span.kv.dispose();
});

test('registry: every codec by name; levels best first; unknown names and levels are typed errors', () => {
  assert.equal(codecNames(), ['cachegen', 'cachegen-released', 'fp16', 'int8-token', 'int8-channel', 'int4-token', 'int4-channel', 'kivi2']);
  for (const c of codecs()) assert.ok(c.levels.includes(c.defaultLevel));
  assert.equal(getCodec('cachegen').levels, ['high', 'default', 'low']);
  assert.throws(() => getCodec('zip'), (e: unknown) => e instanceof UnknownCodecError && e instanceof NotFoundError);
  const span = randomSpan([1, 4, 1, 2], 3);
  assert.throws(() => getCodec('cachegen').encode(span, { level: 'ultra' }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => getCodec('fp16').encode({ ...span, positions: new Int32Array(3) }), (e: unknown) => e instanceof Error && /positions/.test(e.message));
  const nan = Tensor.fromTypedArray(new Float32Array(16).fill(NaN), [1, 2, 4, 1, 2]);
  assert.throws(() => getCodec('cachegen').encode({ ...span, kv: nan }), (e: unknown) => e instanceof ArgumentError);
  nan.dispose();
  span.kv.dispose();
});

test('determinism: the same KV gives the same bytes, whatever its float dtype', () => {
  const span = randomSpan([2, 30, 2, 4], 4);
  const f16 = span.kv.cast('f16');
  const f32 = f16.cast('f32');
  for (const c of codecs()) {
    const a = c.encode({ ...span, kv: f32 });
    const b = c.encode({ ...span, kv: f32 });
    const h = c.encode({ ...span, kv: f16 });
    assert.equal(a, b, `${c.name} twice`);
    assert.equal(a, h, `${c.name} f32 vs f16 input`);
  }
  for (const t of [span.kv, f16, f32]) t.dispose();
});

test('decode into f16, bf16 and f32 agree; positions that are not a run travel too', () => {
  const span = randomSpan([2, 20, 1, 4], 5);
  const odd = { ...span, positions: Int32Array.from({ length: 20 }, (_, i) => 1000 - 3 * i) };
  const c = getCodec('cachegen');
  const bytes = c.encode(odd);
  const a = c.decode(bytes, { dtype: 'f32' });
  const h = c.decode(bytes, { dtype: 'f16' });
  const b = c.decode(bytes, { dtype: 'bf16' });
  assert.equal([...a.positions], [...odd.positions]);
  assert.ok(relErr(h.kv.toFloat32(), a.kv.toFloat32()) < 1e-3);
  assert.ok(relErr(b.kv.toFloat32(), a.kv.toFloat32()) < 1e-2);
  for (const t of [a.kv, h.kv, b.kv, span.kv]) t.dispose();
});

// ---- container safety ------------------------------------------------------------------------------

test('container: every truncation, byte flips, appended bytes -> FormatError; wrong fingerprint or codec -> ArgumentError', () => {
  const span = randomSpan([1, 12, 1, 3], 6);
  const c = getCodec('cachegen');
  const bytes = c.encode(span);
  for (let n = 0; n < bytes.length; n++)
    assert.throws(() => c.decode(bytes.subarray(0, n)), (e: unknown) => e instanceof FormatError, `truncated to ${n}`);
  const r = rng(7);
  for (let k = 0; k < 3000; k++) {
    const b = bytes.slice();
    const i = Math.floor(r() * b.length);
    b[i]! ^= 1 + Math.floor(r() * 255);
    assert.throws(() => c.decode(b), (e: unknown) => e instanceof FormatError, `byte ${i} flipped`);
  }
  const longer = new Uint8Array(bytes.length + 1);
  longer.set(bytes);
  assert.throws(() => c.decode(longer), (e: unknown) => e instanceof FormatError);
  assert.throws(() => c.decode(bytes, { fingerprint: 'llama/other' }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => getCodec('fp16').decode(bytes), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => c.decode('nope' as unknown as Uint8Array), (e: unknown) => e instanceof ArgumentError);
  assert.is(inspectContainer(bytes).fingerprint, 'test/model');
  if (!cudaAvailable()) assert.throws(() => c.decode(bytes, { device: 'cuda:0' }), (e: unknown) => e instanceof DeviceError);
  span.kv.dispose();
});

// ---- stories260K KV and profiles --------------------------------------------------------------------

const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
const fp = modelFingerprint(model.config);
function storySpan(seed: number, n: number): KVSpan {
  const ids = [1, ...Array.from({ length: n - 1 }, (_, i) => 2 + ((seed * 131 + i * 17) % 500))];
  const { cache } = model.prefill(ids, { logits: 'none' });
  const s = cache.exportSpan();
  cache.dispose();
  return { ...s, fingerprint: fp };
}

test('stories260K KV: every codec within its bound; cachegen smaller than the baselines of similar error', () => {
  const span = storySpan(1, 200);
  const bits: Record<string, number> = {};
  for (const [name, level, bound] of BOUNDS) {
    const { err, bits: b } = roundTripErr(span, name, level);
    bits[`${name}/${level ?? 'default'}`] = b;
    assert.ok(err <= bound, `${name}/${level}: relative error ${err} > ${bound}`);
  }
  assert.ok(bits['cachegen/default']! < bits['cachegen-released/default']!, JSON.stringify(bits));
  assert.ok(bits['cachegen/high']! < bits['int8-channel/default']!, JSON.stringify(bits));
  assert.ok(bits['cachegen/low']! < bits['cachegen/default']! && bits['cachegen/default']! < bits['cachegen/high']!);
  span.kv.dispose();
});

test('profiles: build, serialise, parse; encode with a profile is smaller; missing or other profile is a typed error', () => {
  const train = [storySpan(2, 160), storySpan(3, 160)];
  const span = storySpan(4, 120);
  const profile = CodecProfile.build(train, { level: 'default' });
  assert.is(profile.tokens, 320);
  assert.match(profile.hash, /^[0-9a-f]{16}$/);
  const again = CodecProfile.parse(profile.serialize());
  assert.is(again.hash, profile.hash);
  assert.equal(again.tables, profile.tables);
  const c = getCodec('cachegen');
  const shipped = c.encode(span);
  const withProfile = (c.encode as (s: KVSpan, o: object) => Uint8Array)(span, { profile });
  assert.ok(withProfile.length < shipped.length);
  assert.is(inspectContainer(withProfile).profileHash, profile.hash);
  const { err } = roundTripErr(span, 'cachegen', 'default', { profile });
  assert.ok(err < cachegenBound(CACHEGEN_LEVELS[1]!));
  assert.throws(() => c.decode(withProfile), (e: unknown) => e instanceof NotFoundError);
  const other = CodecProfile.build([train[0]!], { level: 'default' });
  assert.throws(() => (c.decode as (b: Uint8Array, o: object) => unknown)(withProfile, { profile: other }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => (c.encode as (s: KVSpan, o: object) => unknown)(span, { level: 'high', profile }), (e: unknown) => e instanceof ArgumentError);
  const ser = profile.serialize();
  ser[ser.length - 10]! ^= 4;
  assert.throws(() => CodecProfile.parse(ser), (e: unknown) => e instanceof FormatError);
  assert.throws(() => CodecProfile.parse(new Uint8Array(5)), (e: unknown) => e instanceof FormatError);
  for (const s of [...train, span]) s.kv.dispose();
});

test('bench (CPU path): relative RMSE, encode, decode and size rows for each chunk length', () => {
  const j = codecBench(model, { tokens: [16, 40], reps: 1 });
  assert.is(j.bench, 'codec');
  const each = ['relRmseK', 'relRmseV', 'encode', 'decode', 'bitsPerValue'];
  assert.equal(j.rows.map((r) => r.metric), [...each, ...each]);
  for (const r of j.rows) assert.ok(Number.isFinite(r.value) && r.value > 0);
  for (const r of j.rows.filter((r) => r.metric.startsWith('relRmse'))) assert.ok(r.value < 0.5, `${r.metric} ${r.value}`);
});

test('bench quality rows: each level and baseline decoded, a continuation run on it, KL and top-1 vs exact KV', () => {
  const j = codecBench(model, { tokens: [40], reps: 1, level: 'high,low', quality: 24 });
  const q = j.rows.filter((r) => (r.case as { part?: string }).part === 'quality');
  const runs = [...new Set(q.map((r) => `${(r.case as { codec: string }).codec}/${(r.case as { level: string }).level}`))];
  assert.equal(runs, ['cachegen/high', 'cachegen/low', 'cachegen-released/default', 'kivi2/g32', 'int4-channel/default']);
  for (const run of runs) {
    const of = (m: string) => q.find((r) => `${(r.case as { codec: string }).codec}/${(r.case as { level: string }).level}` === run && r.metric === m)!.value;
    assert.ok(of('continuationKL') >= 0 && of('continuationKL') < 1, `${run} KL ${of('continuationKL')}`);
    assert.ok(of('continuationTop1') >= 0 && of('continuationTop1') <= 1);
    assert.ok(Number.isFinite(of('bitsPerValue')) && of('bitsPerValue') > 0);
  }
  // Each codec's own container: a coarser one is smaller.
  const bits = (codec: string, level: string) => q.find((r) => (r.case as { codec: string }).codec === codec && (r.case as { level: string }).level === level && r.metric === 'bitsPerValue')!.value;
  assert.ok(bits('cachegen', 'low') < bits('cachegen', 'high'));
  assert.throws(() => codecBench(model, { tokens: [40], reps: 1, quality: 1 }), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => codecBench(model, { tokens: [500], reps: 1, quality: 64 }), (e: unknown) => e instanceof ArgumentError);
});

test.run();
