import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DTYPES, Tensor, cpuThreads, memoryStats, ops, setCpuThreads, type DType } from '../src/index.js';
import { bf16Bits, f16Bits, f16ToNumber, randomFloats, rng } from './support/reference.js';

test('round trip of every dtype on the CPU, shape and byte length kept', () => {
  const cases: [DType, ArrayLike<number>][] = [
    ['f32', [1.5, -2.25, 3e-8, 1e30]],
    ['i32', [-2147483648, 2147483647, 0, 7]],
    ['i8', [-128, 127, 5, -1]],
    ['u8', [0, 255, 17, 3]],
    ['f16', [0x3c00, 0x7bff, 0x0001, 0x8000]],
    ['bf16', [0x3f80, 0x7f7f, 0x0080, 0xbf80]],
  ];
  for (const [dtype, values] of cases) {
    const arr =
      dtype === 'f32' ? Float32Array.from(values) : dtype === 'i32' ? Int32Array.from(values)
      : dtype === 'i8' ? Int8Array.from(values) : dtype === 'u8' ? Uint8Array.from(values) : Uint16Array.from(values);
    const t = Tensor.fromTypedArray(arr, [2, 2], { dtype });
    assert.equal(t.shape, [2, 2]);
    assert.is(t.byteLength, 4 * t.numel / 4 * (dtype === 'f32' || dtype === 'i32' ? 4 : dtype === 'i8' || dtype === 'u8' ? 1 : 2));
    assert.equal(Array.from(t.toTypedArray()), Array.from(arr), dtype);
    t.dispose();
  }
});

test('copyStrided: runs between pitched layouts in one call, bounds and dtype checked', () => {
  const src = Tensor.fromTypedArray(Float32Array.from({ length: 24 }, (_, i) => i), [24]);
  const dst = Tensor.fromTypedArray(new Float32Array(40).fill(-1), [40]);
  dst.copyStrided(src, { rows: 3, width: 4, srcPitch: 8, dstPitch: 10, srcOffset: 2, dstOffset: 5 });
  const got = Array.from(dst.toTypedArray() as Float32Array);
  const want = new Array(40).fill(-1);
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) want[5 + r * 10 + c] = 2 + r * 8 + c;
  assert.equal(got, want);
  const bad = (o: Parameters<Tensor['copyStrided']>[1]) => { try { dst.copyStrided(src, o); return null; } catch (e) { return (e as Error).name; } };
  assert.is(bad({ rows: 4, width: 4, srcPitch: 8, dstPitch: 10, dstOffset: 5 }), 'ShapeError');   // 5 + 30 + 4 > 40
  assert.is(bad({ rows: 3, width: 9, srcPitch: 8, dstPitch: 10 }), 'ArgumentError');              // width > pitch
  assert.is(bad({ rows: 3, width: 4, srcPitch: 8, dstPitch: 10, srcOffset: 8 }), 'ShapeError');    // reads past 24
  assert.is(bad({ rows: -1, width: 4, srcPitch: 8, dstPitch: 10 }), 'ArgumentError');
  const half = Tensor.empty([40], { dtype: 'f16' });
  assert.throws(() => half.copyStrided(src, { rows: 1, width: 1, srcPitch: 1, dstPitch: 1 }), (e: unknown) => (e as Error).name === 'DTypeError');
  for (const t of [src, dst, half]) t.dispose();
});

test('hand-checked f16 and bf16 roundings (ties to even, overflow, subnormals)', () => {
  const x = Float32Array.from([1, 1 / 3, 65504, 65519, 65520, 2 ** -24, 2 ** -25, 3 * 2 ** -25, 1 + 2 ** -11, 1 + 3 * 2 ** -11, -0]);
  const t = Tensor.fromTypedArray(x);
  const h = t.cast('f16');
  assert.equal(Array.from(h.toTypedArray()), [0x3c00, 0x3555, 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0002, 0x3c00, 0x3c02, 0x8000]);
  const b = t.cast('bf16');
  // 1/3 = 0x3eaaaaab -> 0x3eab (round up); 65504 = 0x477fe000 -> 0x4780 (tie at ...e000? no: rounds up)
  assert.equal(Array.from(b.toTypedArray()).slice(0, 3), [0x3f80, 0x3eab, 0x4780]);
  for (const u of [t, h, b]) u.dispose();
});

test('CPU casts match the float64 reference on 100003 random values (f16, bf16, integers)', () => {
  const x = randomFloats(100003, 1);
  const t = Tensor.fromTypedArray(x);
  const h = t.cast('f16').toTypedArray();
  const b = t.cast('bf16').toTypedArray();
  const i8 = t.cast('i8').toTypedArray();
  const i32 = t.cast('i32').toTypedArray();
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (h[i] !== f16Bits(v)) assert.unreachable(`f16 of ${v}: got ${h[i]} want ${f16Bits(v)}`);
    if (Math.abs(v) >= 2 ** -126 && b[i] !== bf16Bits(v)) assert.unreachable(`bf16 of ${v}: got ${b[i]} want ${bf16Bits(v)}`);
    const r = Math.min(127, Math.max(-128, Math.round(v) - (Math.abs(v % 1) === 0.5 && Math.round(v) % 2 !== 0 ? 1 : 0)));
    if (i8[i] !== r) assert.unreachable(`i8 of ${v}: got ${i8[i]} want ${r}`);
    if (Math.abs(v) < 1e6 && i32[i] !== Math.round(v) - (Math.abs(v % 1) === 0.5 && Math.round(v) % 2 !== 0 ? 1 : 0))
      assert.unreachable(`i32 of ${v}: got ${i32[i]}`);
  }
  t.dispose();
});

test('f16 -> f32 decodes exactly; fromTypedArray(Float32Array, dtype) converts like cast', () => {
  const r = rng(3);
  const bits = Uint16Array.from({ length: 4099 }, () => {
    let v = Math.floor(r() * 65536);
    while (((v >> 10) & 0x1f) === 31) v = Math.floor(r() * 65536);  // no inf/NaN
    return v;
  });
  const t = Tensor.fromTypedArray(bits, undefined, { dtype: 'f16' });
  const f = t.toFloat32();
  for (let i = 0; i < bits.length; i++) assert.is(f[i], Math.fround(f16ToNumber(bits[i]!)));
  const again = Tensor.fromTypedArray(f, undefined, { dtype: 'f16' });
  assert.equal(Array.from(again.toTypedArray()), Array.from(bits));
  t.dispose();
  again.dispose();
});

test('every dtype pair casts on the CPU and the result has the target dtype and shape', () => {
  const src = Tensor.fromTypedArray(Float32Array.from([1, -2, 3.5, 100]), [4]);
  for (const a of DTYPES) {
    const s = src.cast(a);
    for (const b of DTYPES) {
      const d = s.cast(b);
      assert.is(d.dtype, b);
      assert.equal(d.shape, [4]);
      assert.is(d.toFloat32()[0], 1);
      d.dispose();
    }
    s.dispose();
  }
  src.dispose();
});

test('setCpuThreads resizes the worker pool again and again after parallel work; results unchanged', () => {
  const n = 100003;
  const a = Tensor.fromTypedArray(randomFloats(n, 31)), b = Tensor.fromTypedArray(randomFloats(n, 32)), out = Tensor.empty([n]);
  ops.add(a, b, out);
  const want = out.toFloat32();
  const threads = cpuThreads();
  try {
    // Resizing after a run used to start workers on the finished run's (null) task: a crash.
    for (const t of [2, 2, 1, 3, 3]) {
      assert.is(setCpuThreads(t), t);
      ops.add(a, b, out);
      assert.equal(out.toFloat32(), want, `${t} threads`);
    }
  } finally {
    setCpuThreads(threads);
  }
  for (const t of [a, b, out]) t.dispose();
});

test('live bytes are counted per device and return to the start after dispose', () => {
  const before = memoryStats().cpu!.liveBytes;
  const t = Tensor.empty([1000, 3], { dtype: 'f16' });
  assert.is(memoryStats().cpu!.liveBytes - before, 6000);
  t.dispose();
  t.dispose();  // idempotent
  assert.is(memoryStats().cpu!.liveBytes, before);
});

test('a forgotten tensor is freed by its finalizer after garbage collection', async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;  // the runner passes --expose-gc; without it there is nothing to observe
  for (let i = 0; i < 3; i++) { gc(); await new Promise((r) => setTimeout(r, 10)); }  // settle earlier garbage
  const before = memoryStats().cpu!.liveBytes;
  (() => { Tensor.empty([1 << 20], { dtype: 'u8' }); })();
  assert.is(memoryStats().cpu!.liveBytes - before, 1 << 20);
  for (let i = 0; i < 10 && memoryStats().cpu!.liveBytes !== before; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.is(memoryStats().cpu!.liveBytes, before);
});

test('to("cpu") copies; copyFrom overwrites; empty tensors work', () => {
  const a = Tensor.fromArray([1, 2, 3], [3]);
  const b = a.to('cpu');
  a.dispose();
  assert.equal(Array.from(b.toFloat32()), [1, 2, 3]);
  const z = Tensor.empty([0, 4]);
  assert.is(z.numel, 0);
  assert.is(z.toTypedArray().length, 0);
  z.dispose();
  b.dispose();
});

test.run();
