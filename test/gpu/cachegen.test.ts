// CacheGen on CUDA against the host codec: byte-identical containers (random KV of odd shapes in
// f32/f16/bf16, tables shipped and from a profile; stories260K KV computed on the GPU; a
// Mistral-7B-shaped random model's KV), each side decoding the other's container to the same bits,
// and corrupt containers rejected with FormatError by the CUDA decoder. Tolerance: exact.
import * as assert from 'uvu/assert';
import { CodecProfile, getCodec, type KVSpan } from '../../src/cachegen/index.js';
import { loadLlama2c } from '../../src/model/llama2c.js';
import { Model } from '../../src/model/model.js';
import { MISTRAL_7B } from '../../src/model/presets.js';
import { modelFingerprint } from '../../src/model/fingerprint.js';
import { FormatError } from '../../src/runtime/errors.js';
import { Tensor } from '../../src/runtime/tensor.js';
import type { DType } from '../../src/runtime/dtype.js';
import { suite } from 'uvu';
import { cudaStatus } from '../../src/runtime/device.js';
import { STORIES_BIN } from '../support/models.js';
import { rng } from '../support/reference.js';

// A local skip rule instead of support/gpu.ts: that one loads src/index.ts, whose eval module needs
// the plotting packages a slim GPU host lacks, and this file must run there on its own.
const test = suite('gpu cachegen');
const why = (() => { try { const s = cudaStatus(); return s.available ? null : s.reason; } catch (e) { return (e as Error).message; } })();
if (why !== null) process.stdout.write(`  [gpu cachegen] skipped: ${why.split(';')[0]}\n`);
const run = why === null ? test : (((_n: string, _f: unknown) => test.skip()) as unknown as typeof test);

const cg = getCodec('cachegen');
type Enc = (s: KVSpan, o: object) => Uint8Array;
type Dec = (b: Uint8Array, o: object) => ReturnType<typeof cg.decode>;

function hostSpan(shape: [number, number, number, number], seed: number, dtype: DType): KVSpan {
  const [L, T, H, D] = shape;
  const r = rng(seed);
  const x = Float32Array.from({ length: L * 2 * T * H * D }, (_, i) => Math.sin(i * 0.01 + seed) * (i % 13 === 0 ? 6 : 1) + 0.2 * (r() * 2 - 1));
  const f = Tensor.fromTypedArray(x, [L, 2, T, H, D]);
  const kv = dtype === 'f32' ? f : f.cast(dtype);
  if (kv !== f) f.dispose();
  return { kv, positions: Int32Array.from({ length: T }, (_, i) => i), fingerprint: 'gpu/test' };
}

function sameBytes(a: Uint8Array, b: Uint8Array, what: string): void {
  assert.is(a.length, b.length, `${what}: lengths`);
  let first = -1;
  for (let i = 0; i < a.length && first < 0; i++) if (a[i] !== b[i]) first = i;
  assert.is(first, -1, `${what}: first differing byte`);
}

/** Host and CUDA encodes equal; host and CUDA decodes of it equal bit for bit. */
function parity(span: KVSpan, level: string, what: string, profile?: CodecProfile): void {
  const dev = span.kv.to('cuda:0');
  try {
    const host = (cg.encode as Enc)(span, { level, profile });
    const cuda = (cg.encode as Enc)({ ...span, kv: dev }, { level, profile });
    sameBytes(host, cuda, what);
    for (const dtype of ['f16', 'f32', 'bf16'] as DType[]) {
      const a = (cg.decode as Dec)(cuda, { dtype, profile });
      const b = (cg.decode as Dec)(host, { dtype, device: 'cuda:0', profile });
      const hb = b.kv.to('cpu');
      sameBytes(a.kv.toBytes(), hb.toBytes(), `${what}: decoded ${dtype}`);
      for (const t of [a.kv, b.kv, hb]) t.dispose();
    }
  } finally {
    dev.dispose();
  }
}

run('random KV (odd shapes, f32/f16/bf16): CUDA bytes = host bytes, each decodes the other', () => {
  const shapes: [number, number, number, number][] = [[1, 1, 1, 1], [3, 37, 2, 5], [2, 211, 3, 7], [2, 2100, 1, 64]];
  let seed = 1;
  for (const shape of shapes)
    for (const dtype of ['f32', 'f16', 'bf16'] as DType[]) {
      const span = hostSpan(shape, seed++, dtype);
      for (const level of cg.levels) parity(span, level, `[${shape}] ${dtype} ${level}`);
      span.kv.dispose();
    }
});

run('tables from a profile: CUDA bytes = host bytes', () => {
  const train = hostSpan([2, 300, 2, 8], 50, 'f16');
  const span = hostSpan([2, 123, 2, 8], 51, 'f16');
  const profile = CodecProfile.build([{ ...train, fingerprint: 'gpu/test' }], { level: 'default' });
  parity(span, 'default', 'profile', profile);
  for (const t of [train.kv, span.kv]) t.dispose();
});

run('stories260K KV computed on the GPU and Mistral-7B-shaped KV: CUDA bytes = host bytes', async () => {
  const m = Model.fromWeights(await loadLlama2c(STORIES_BIN), { device: 'cuda:0', dtype: 'f16' });
  const ids = Array.from({ length: 300 }, (_, i) => 1 + ((i * 37) % 500));
  let { cache } = m.prefill(ids, { logits: 'none' });
  let s = cache.exportSpan();
  let host = s.kv.to('cpu');
  for (const level of cg.levels) parity({ kv: host, positions: s.positions, fingerprint: modelFingerprint(m.config) }, level, `stories ${level}`);
  for (const t of [s.kv, host]) t.dispose();
  cache.dispose();
  m.dispose();
  const big = Model.random(MISTRAL_7B, { device: 'cuda:0', dtype: 'f16', seed: 3 });
  ({ cache } = big.prefill(Array.from({ length: 256 }, (_, i) => (i * 7919) % 32000), { logits: 'none' }));
  s = cache.exportSpan();
  host = s.kv.to('cpu');
  parity({ kv: host, positions: s.positions, fingerprint: modelFingerprint(big.config) }, 'default', 'mistral-7b shape 256');
  for (const t of [s.kv, host]) t.dispose();
  cache.dispose();
  big.dispose();
});

run('CUDA decoder: corrupt containers are FormatErrors', () => {
  const span = hostSpan([2, 40, 1, 8], 9, 'f16');
  const bytes = cg.encode(span);
  const r = rng(10);
  for (let k = 0; k < 300; k++) {
    const b = bytes.slice();
    b[Math.floor(r() * b.length)]! ^= 1 + Math.floor(r() * 255);
    assert.throws(() => cg.decode(b, { device: 'cuda:0' }), (e: unknown) => e instanceof FormatError);
  }
  for (const n of [0, 10, 100, bytes.length - 1])
    assert.throws(() => cg.decode(bytes.subarray(0, n), { device: 'cuda:0' }), (e: unknown) => e instanceof FormatError);
  span.kv.dispose();
});

test.run();
