// CUDA vs the C++ reference, op by op, on fresh random inputs (never zeros) with poisoned outputs.
// Tolerance policy: casts and copies are exact (bit-identical bytes).
import * as assert from 'uvu/assert';
import { DTYPES, Tensor, type DType } from '../../src/index.js';
import { gpuSuite, poison } from '../support/gpu.js';
import { randomFloats, rng } from '../support/reference.js';

const test = gpuSuite('gpu parity');
const SIZES = [1, 19, 111, 989, 100003];

/** Random source data of `dtype`, built on the host from random floats or random integers. */
function randomSource(dtype: DType, n: number, seed: number): Tensor {
  if (dtype === 'i32') {
    const r = rng(seed);
    return Tensor.fromTypedArray(Int32Array.from({ length: n }, () => (Math.floor(r() * 2 ** 32) - 2 ** 31) | 1));
  }
  if (dtype === 'i8' || dtype === 'u8') {
    const r = rng(seed);
    const bytes = Uint8Array.from({ length: n }, () => 1 + Math.floor(r() * 255));
    return Tensor.fromBytes(bytes, [n], { dtype });
  }
  const f = Tensor.fromTypedArray(randomFloats(n, seed));
  if (dtype === 'f32') return f;
  const t = f.cast(dtype);
  f.dispose();
  return t;
}

function bytesEqual(a: Uint8Array, b: Uint8Array, what: string) {
  assert.is(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) assert.unreachable(`${what}: first differing byte at ${i} (${a[i]} vs ${b[i]})`);
}

test('cast: every dtype pair, odd sizes, CUDA bytes equal the C++ reference', () => {
  let seed = 100;
  for (const n of SIZES) {
    for (const s of DTYPES) {
      const hostSrc = randomSource(s, n, seed++);
      const devSrc = hostSrc.to('cuda:0');
      for (const d of DTYPES) {
        const ref = Tensor.empty([n], { dtype: d });
        poison(ref);
        hostSrc.castInto(ref);
        const out = Tensor.empty([n], { dtype: d, device: 'cuda:0' });
        poison(out);
        devSrc.castInto(out);
        bytesEqual(out.toBytes(), ref.toBytes(), `cast ${s}->${d} n=${n}`);
        ref.dispose();
        out.dispose();
      }
      hostSrc.dispose();
      devSrc.dispose();
    }
  }
});

test('copies: host->device->device->host round trips are exact for every dtype', () => {
  for (const dtype of DTYPES) {
    const src = randomSource(dtype, 989, 7);
    const a = src.to('cuda:0');
    const b = Tensor.empty([989], { dtype, device: 'cuda:0' });
    poison(b);
    b.copyFrom(a);
    const back = b.to('cpu');
    bytesEqual(back.toBytes(), src.toBytes(), `copy ${dtype}`);
    for (const t of [src, a, b, back]) t.dispose();
  }
});

test.run();
