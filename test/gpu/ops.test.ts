// Every model op on CUDA against the C++ reference, on fresh random inputs with poisoned outputs.
// Tolerance policy (relative error, DESIGN.md): exact for embedding, gather/scatter and sampling ids;
// f32 <= 1e-5 (attention and matmul 1e-4: other summation orders); f16 <= 1e-2; bf16 <= 2e-2,
// where the reference is the f32 C++ op on the same (already rounded) inputs.
import * as assert from 'uvu/assert';
import { Tensor, ops, type DType } from '../../src/index.js';
import { ropeInvFreq } from '../../src/model/rope.js';
import { gpuSuite, poison } from '../support/gpu.js';
import { relErr, rng } from '../support/reference.js';

const test = gpuSuite('gpu ops');
const DTYPES: DType[] = ['f32', 'f16', 'bf16'];
const TOL: Record<string, number> = { f32: 1e-5, f16: 1e-2, bf16: 2e-2 };

function rand(n: number, seed: number, scale = 1): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale || scale * 0.5);
}

/** The host f32 tensor holding `x` rounded to `dtype` (so both sides see the same inputs). */
function rounded(x: Float32Array, shape: number[], dtype: DType): Tensor {
  const t = Tensor.fromTypedArray(x, shape, { dtype: dtype === 'f32' ? 'f32' : dtype });
  const f = t.cast('f32');
  t.dispose();
  return f;
}

function onDevice(host: Tensor, dtype: DType): Tensor {
  const d = host.to('cuda:0');
  if (dtype === 'f32') return d;
  const c = d.cast(dtype);
  d.dispose();
  return c;
}


function emptyPoisoned(shape: number[], dtype: DType): Tensor {
  const t = Tensor.empty(shape, { dtype, device: 'cuda:0' });
  poison(t);
  return t;
}

function check(name: string, out: Tensor, ref: Tensor, tol: number) {
  const e = relErr(out.toFloat32(), ref.toTypedArray() as Float32Array);
  assert.ok(e <= tol, `${name}: relative error ${e} > ${tol}`);
}

const i32 = (xs: ArrayLike<number>, device = 'cpu') => Tensor.fromTypedArray(Int32Array.from(xs), undefined, { device });

test('rmsnorm', () => {
  let seed = 1;
  for (const [n, dim] of [[19, 111], [3, 4096], [1, 64]] as const) for (const dt of DTYPES) {
    const x = rounded(rand(n * dim, seed++, 3), [n, dim], dt), w = rounded(rand(dim, seed++), [dim], dt);
    const ref = Tensor.empty([n, dim]);
    ops.rmsnorm(x, w, ref, 1e-5);
    const dx = onDevice(x, dt), dw = onDevice(w, dt), out = emptyPoisoned([n, dim], dt);
    ops.rmsnorm(dx, dw, out, 1e-5);
    check(`rmsnorm ${dt} ${n}x${dim}`, out, ref, TOL[dt]!);
  }
});

test('matmul (cuBLAS) with and without bias, prefill and decode shapes', () => {
  let seed = 100;
  // n <= 8 with 16-byte rows takes the gemv kernel; the rest cuBLAS.
  const shapes = [[19, 111, 989, true], [1, 512, 384, false], [1, 4096, 1000, true], [3, 136, 77, true], [8, 1024, 333, false],
    [256, 512, 384, true], [37, 64, 512, false]] as const;
  for (const [n, k, m, bias] of shapes) for (const dt of DTYPES) {
    const x = rounded(rand(n * k, seed++), [n, k], dt), w = rounded(rand(m * k, seed++, 0.1), [m, k], dt);
    const b = bias ? rounded(rand(m, seed++), [m], dt) : null;
    const ref = Tensor.empty([n, m]);
    ops.matmul(x, w, b, ref);
    const out = emptyPoisoned([n, m], dt);
    ops.matmul(onDevice(x, dt), onDevice(w, dt), b ? onDevice(b, dt) : null, out);
    check(`matmul ${dt} ${n}x${k}x${m}`, out, ref, dt === 'f32' ? 1e-4 : TOL[dt]!);
  }
});

test('rope: plain and llama3-scaled frequencies, negative and large positions', () => {
  let seed = 200;
  for (const [n, heads, hd] of [[37, 3, 64], [5, 8, 128], [11, 2, 80]] as const) for (const dt of DTYPES) {
    const inv = Tensor.fromTypedArray(ropeInvFreq({ headDim: hd, ropeTheta: 500000, ropeScaling:
      { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } }));
    const r = rng(seed);
    const pos = Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -Math.floor(r() * 300) : Math.floor(r() * 100000)));
    const ref = rounded(rand(n * heads * hd, seed++), [n, heads, hd], dt);
    const out = onDevice(ref, dt);
    ops.rope(ref, i32(pos), inv, heads);
    ops.rope(out, i32(pos, 'cuda:0'), inv.to('cuda:0'), heads);
    check(`rope ${dt} ${n}x${heads}x${hd}`, out, ref, dt === 'f32' ? 2e-5 : TOL[dt]!);
  }
});

test('attention: GQA, shuffled absolute positions, queries that see no key, decode and prefill shapes', () => {
  let seed = 300;
  // Decode shapes (nq <= 4, f16/bf16) run the grouped decode kernel: groups 1, 4, 8 at d 64; 2, 4, 8 at d 128.
  const cases = [[1, 111, 8, 2, 64], [19, 989, 8, 2, 128], [128, 128, 4, 4, 64], [7, 4099, 32, 8, 128], [16, 300, 6, 2, 80],
    [1, 1024, 32, 8, 128], [3, 777, 16, 2, 128], [2, 50, 4, 4, 64], [4, 333, 8, 4, 128], [1, 5000, 64, 8, 64],
    // nq > 64 at d = 128 (f16/bf16): the wgmma path on Hopper, mma.sync elsewhere.
    [200, 1500, 8, 2, 128], [77, 3000, 4, 1, 128]] as const;
  for (const [nq, nk, hq, hkv, d] of cases) for (const dt of DTYPES) {
    const r = rng(seed);
    const kpos = Array.from({ length: nk }, (_, j) => j).sort(() => r() - 0.5);  // keys in shuffled slots
    const qpos = Array.from({ length: nq }, (_, i) => (i === 0 && nq > 1 ? -1 : Math.floor(r() * nk)));  // query 0 sees nothing
    checkAttention('attention', [nq, nk, hq, hkv, d], dt, qpos, kpos, seed, 1);
    seed += 3;
  }
});

/** CUDA attention vs the CPU reference for random q, k, v (seeds seed..seed+2; q and k times qkScale). */
function checkAttention(name: string, [nq, nk, hq, hkv, d]: readonly [number, number, number, number, number], dt: DType, qpos: number[], kpos: number[],
  seed: number, qkScale: number) {
  const q = rounded(rand(nq * hq * d, seed, qkScale), [nq, hq, d], dt);
  const k = rounded(rand(nk * hkv * d, seed + 1, qkScale), [nk, hkv, d], dt);
  const v = rounded(rand(nk * hkv * d, seed + 2), [nk, hkv, d], dt);
  const shape = { queryHeads: hq, kvHeads: hkv, headDim: d, scale: 1 / Math.sqrt(d) };
  const ref = Tensor.empty([nq, hq, d]);
  ops.attention(q, k, v, i32(qpos), i32(kpos), ref, shape);
  const out = emptyPoisoned([nq, hq, d], dt);
  ops.attention(onDevice(q, dt), onDevice(k, dt), onDevice(v, dt), i32(qpos, 'cuda:0'), i32(kpos, 'cuda:0'), out, shape);
  check(`${name} ${dt} nq=${nq} nk=${nk} ${hq}/${hkv}x${d}`, out, ref, dt === 'f32' ? 1e-4 : TOL[dt]!);
}

test('attention: causal prefill in order (full, diagonal and skipped key tiles), chunked query blocks', () => {
  let seed = 350;
  // [nq, nk, hq, hkv, d]: queries are the last nq of nk positions 0..nk-1, keys in order.
  const cases = [[384, 384, 8, 2, 128], [300, 1000, 4, 4, 128], [129, 129, 2, 1, 128], [256, 700, 4, 2, 64]] as const;
  for (const [nq, nk, hq, hkv, d] of cases) for (const dt of DTYPES) {
    const kpos = Array.from({ length: nk }, (_, j) => j);
    const qpos = Array.from({ length: nq }, (_, i) => nk - nq + i);
    checkAttention('causal attention', [nq, nk, hq, hkv, d], dt, qpos, kpos, seed, 2);
    seed += 3;
  }
});

test('swiglu and add', () => {
  for (const dt of DTYPES) {
    const n = 100003;
    const a = rounded(rand(n, 400, 6), [n], dt), b = rounded(rand(n, 401, 2), [n], dt);
    for (const op of ['swiglu', 'add'] as const) {
      const ref = Tensor.empty([n]);
      ops[op](a, b, ref);
      const out = emptyPoisoned([n], dt);
      ops[op](onDevice(a, dt), onDevice(b, dt), out);
      check(`${op} ${dt}`, out, ref, TOL[dt]!);
    }
  }
});

test('embedding, gatherRows, scatterRows: exact', () => {
  for (const dt of DTYPES) {
    const table = rounded(rand(111 * 19, 500), [111, 19], dt);
    const ids = Array.from({ length: 37 }, (_, i) => (i * 53) % 111);
    const ref = Tensor.empty([37, 19]);
    ops.embedding(i32(ids), table, ref);
    const out = emptyPoisoned([37, 19], dt);
    ops.embedding(i32(ids, 'cuda:0'), onDevice(table, dt), out);
    check(`embedding ${dt}`, out, ref, 0);
    const perm = Array.from({ length: 111 }, (_, i) => (i * 41) % 111);  // 41 is prime to 111: a permutation
    const g = emptyPoisoned([111, 19], dt);
    ops.gatherRows(onDevice(table, dt), i32(perm, 'cuda:0'), g);
    const gr = Tensor.empty([111, 19]);
    ops.gatherRows(table, i32(perm), gr);
    check(`gather ${dt}`, g, gr, 0);
    const s = emptyPoisoned([111, 19], dt);
    ops.scatterRows(g, i32(perm, 'cuda:0'), s);
    check(`scatter ${dt}`, s, table, 0);
  }
});

test('rowSqDiff (CacheBlend deviation): CUDA vs C++, set and accumulate', () => {
  for (const dt of DTYPES) {
    const a = rounded(rand(203 * 72, 810), [203, 72], dt), b = rounded(rand(203 * 72, 811), [203, 72], dt);
    const c = rounded(rand(203 * 72, 812), [203, 72], dt);
    const ref = Tensor.empty([203]);
    ops.rowSqDiff(a, b, ref);
    ops.rowSqDiff(c, b, ref, true);
    const out = emptyPoisoned([203], 'f32');
    ops.rowSqDiff(onDevice(a, dt), onDevice(b, dt), out);
    ops.rowSqDiff(onDevice(c, dt), onDevice(b, dt), out, true);
    check(`rowSqDiff ${dt}`, out, ref, 1e-5);
    // Indexed: rows of b picked by an i32 index on the device (a cache slab read in place).
    const pick = Int32Array.from({ length: 203 }, (_, i) => (i * 37 + 11) % 203);
    const refI = Tensor.empty([203]);
    ops.rowSqDiff(a, b, refI, false, undefined, Tensor.fromTypedArray(pick));
    const outI = emptyPoisoned([203], 'f32');
    ops.rowSqDiff(onDevice(a, dt), onDevice(b, dt), outI, false, undefined, Tensor.fromTypedArray(pick, undefined, { device: 'cuda:0' }));
    check(`rowSqDiff indexed ${dt}`, outI, refI, 1e-5);
  }
});

test('attentionMass (query-attention scores): CUDA vs C++ on the same f32/f16/bf16 values, deterministic', () => {
  // Both sides read the same (16-bit) values: the C++ op sums in double, CUDA in f32. [nq, nk, hq, hkv, d]:
  // nq 1 and 40, nk 5000 (not a multiple of the 256-key blocks), several tiles of pairs (40 x 8 at d 64),
  // GQA and MHA, head dims whose rows take the 16-byte path or not (12 and 5), an unaligned key buffer.
  const cases = [[1, 5000, 8, 2, 128], [40, 5000, 8, 2, 64], [40, 777, 32, 8, 128], [3, 300, 4, 4, 80], [5, 1000, 6, 2, 12],
    [7, 257, 2, 1, 5], [64, 129, 4, 1, 32]] as const;
  const MASS_TOL: Record<string, number> = { f32: 1e-5, f16: 1e-4, bf16: 1e-4 };
  let seed = 900;
  for (const [nq, nk, hq, hkv, d] of cases) for (const dt of DTYPES) for (const unaligned of [false, true]) {
    if (unaligned && d !== 128) continue;
    const r = rng(seed);
    const kpos = Array.from({ length: nk }, (_, j) => j).sort(() => r() - 0.5);  // keys in shuffled slots
    for (let j = 5; j < nk; j += 11) kpos[j] = nk + j;  // keys no query sees
    const qpos = Array.from({ length: nq }, (_, i) => (i === 0 && nq > 1 ? -1 : Math.floor(r() * nk)));  // query 0 sees nothing
    const q = Tensor.fromTypedArray(rand(nq * hq * d, seed + 1, 2), [nq, hq, d], { dtype: dt });
    const kHost = Tensor.fromTypedArray(rand(nk * hkv * d + 1, seed + 2, 2), [nk * hkv * d + 1], { dtype: dt });
    seed += 3;
    const k = kHost.view([nk, hkv, d], unaligned ? 1 : 0);
    const shape = { heads: hq, kvHeads: hkv, headDim: d, scale: 1 / Math.sqrt(d) };
    const ref = Tensor.empty([nk]);
    ops.attentionMass(q, k, i32(qpos), i32(kpos), ref, shape);
    const dq = q.to('cuda:0'), dkAll = kHost.to('cuda:0'), dk = dkAll.view([nk, hkv, d], unaligned ? 1 : 0);
    const dqpos = i32(qpos, 'cuda:0'), dkpos = i32(kpos, 'cuda:0');
    const runs = [0, 1].map(() => {
      const out = emptyPoisoned([nk], 'f32');
      ops.attentionMass(dq, dk, dqpos, dkpos, out, shape);
      return out.toFloat32();
    });
    const name = `attentionMass ${dt} nq=${nq} nk=${nk} ${hq}/${hkv}x${d}${unaligned ? ' unaligned' : ''}`;
    check(name, Tensor.fromTypedArray(runs[0]!), ref, MASS_TOL[dt]!);
    assert.equal(new Uint32Array(runs[1]!.buffer), new Uint32Array(runs[0]!.buffer), `${name}: two runs differ`);
    for (let j = 5; j < nk; j += 11) assert.is(runs[0]![j], 0, `${name}: key ${j} is never visible`);
    let pairs = 0;
    for (const p of qpos) if (p >= Math.min(...kpos)) pairs += hq;
    const total = runs[0]!.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(total - pairs) <= 1e-4 * pairs, `${name}: sum ${total}, expected ${pairs} (query, head) pairs`);
  }
  // No query: zeros over the poisoned output.
  const out = emptyPoisoned([300], 'f32');
  ops.attentionMass(Tensor.empty([0, 4, 64], { device: 'cuda:0' }), Tensor.fromTypedArray(rand(300 * 64, 950), [300, 1, 64]).to('cuda:0'),
    Tensor.empty([0], { dtype: 'i32', device: 'cuda:0' }), i32(Array.from({ length: 300 }, (_, j) => j), 'cuda:0'), out,
    { heads: 4, kvHeads: 1, headDim: 64, scale: 0.125 });
  assert.ok(out.toFloat32().every((v) => v === 0), 'nq = 0 gives zeros');
});

test('sample: greedy, temperature and top-p pick the same id as the C++ reference', () => {
  const scratch = Tensor.empty([1], { dtype: 'i32', device: 'cuda:0' });
  let agree = 0, total = 0;
  for (let s = 0; s < 40; s++) {
    const logits = Tensor.fromTypedArray(rand(32000, 600 + s, 8));
    const dev = logits.to('cuda:0');
    const r = rng(700 + s);
    for (const [temperature, topP] of [[0, 1], [1, 1], [0.7, 0.9], [1.3, 0.5]] as const) {
      const o = { temperature, topP, u: r() };
      const a = ops.sample(logits, o), b = ops.sample(dev, o, scratch);
      total++;
      if (a === b) agree++;
      if (temperature === 0) assert.is(b, a, 'greedy must agree exactly');
    }
  }
  // Sampled picks may differ only where u lands on a float-rounding boundary of the running mass.
  assert.ok(agree >= total - 2, `${agree}/${total} samples agree`);
});

test.run();
