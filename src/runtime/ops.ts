/**
 * The model ops on tensors (the C++ reference on the CPU, kvlab's kernels and cuBLAS on CUDA), with
 * their shapes checked here first. Outputs are caller-provided tensors, so a forward pass can reuse
 * one workspace. CPU tensors must be f32 (attentionMass also reads f16 and bf16 there); CUDA tensors
 * f32, f16 or bf16. Index and position tensors are i32. Work on CUDA is queued on `stream` (default:
 * the device's legacy stream, which every copy back to the host waits for). Definitions:
 * native/cpu/ops.h.
 */
import { addon } from './addon.js';
import { DTYPE_BYTES, DTYPE_IDS, isFloatDType } from './dtype.js';
import { ArgumentError, DTypeError, DeviceError, ShapeError, native } from './errors.js';
import type { Stream } from './stream.js';
import type { Tensor } from './tensor.js';

function last(t: Tensor): number {
  return t.shape[t.shape.length - 1] ?? 1;
}

function sameDtype(op: string, ...ts: Tensor[]): void {
  const d = ts[0]!.dtype;
  for (const t of ts) if (t.dtype !== d) throw new DTypeError(`${op}: dtypes differ (${ts.map((x) => x.describe()).join(', ')})`);
}

function i32(op: string, name: string, t: Tensor, n: number): void {
  if (t.dtype !== 'i32') throw new DTypeError(`${op}: ${name} must be i32, got ${t.describe()}`);
  if (t.numel !== n) throw new ShapeError(`${op}: ${name} has ${t.numel} entries, expected ${n}`);
}

function sameDevice(op: string, ...ts: Tensor[]): void {
  for (const t of ts) if (!t.device.equals(ts[0]!.device)) throw new DeviceError(`${op}: tensors on different devices (${ts.map((x) => x.describe()).join(', ')})`);
}

function numel(op: string, t: Tensor, n: number, what: string): void {
  if (t.numel !== n) throw new ShapeError(`${op}: ${what} ${t.describe()} has ${t.numel} elements, expected ${n}`);
}

const s = (x?: Stream) => x?.nativeHandle ?? null;

/** out[i, :] = table[ids[i], :]; table [vocab, dim]. */
export function embedding(ids: Tensor, table: Tensor, out: Tensor, stream?: Stream): void {
  const [vocab = 0, dim = 0] = table.shape;
  i32('embedding', 'ids', ids, ids.numel);
  numel('embedding', out, ids.numel * dim, 'out');
  sameDevice('embedding', ids, table, out);
  native(() => addon().embedding(ids.nativeHandle, ids.numel, table.nativeHandle, DTYPE_IDS[table.dtype], vocab, dim,
    out.nativeHandle, DTYPE_IDS[out.dtype], s(stream)));
}

/** out = x / rms(x) * w over the last dimension. out may be x. */
export function rmsnorm(x: Tensor, w: Tensor, out: Tensor, eps: number, stream?: Stream): void {
  const dim = w.numel;
  if (last(x) !== dim) throw new ShapeError(`rmsnorm: x ${x.describe()} does not end in ${dim}`);
  numel('rmsnorm', out, x.numel, 'out');
  sameDtype('rmsnorm', x, w, out);
  sameDevice('rmsnorm', x, w, out);
  native(() => addon().rmsnorm(x.nativeHandle, w.nativeHandle, out.nativeHandle, DTYPE_IDS[x.dtype], x.numel / dim, dim, eps, s(stream)));
}

/** out[n, m] = x[n, k] w[m, k]^T (+ bias[m]). */
export function matmul(x: Tensor, w: Tensor, bias: Tensor | null, out: Tensor, stream?: Stream): void {
  const [m = 0, k = 0] = w.shape;
  if (w.shape.length !== 2 || last(x) !== k) throw new ShapeError(`matmul: x ${x.describe()} and w ${w.describe()} do not agree on k`);
  const n = x.numel / k;
  numel('matmul', out, n * m, 'out');
  if (bias) numel('matmul', bias, m, 'bias');
  const all = bias ? [x, w, bias, out] : [x, w, out];
  sameDtype('matmul', ...all);
  sameDevice('matmul', ...all);
  native(() => addon().matmul(x.nativeHandle, w.nativeHandle, bias?.nativeHandle ?? null, out.nativeHandle, DTYPE_IDS[x.dtype], n, k, m, s(stream)));
}

/** In-place RoPE (halves pairing) of x[n, heads, headDim] at positions pos[n]; invFreq f32[headDim/2]. */
export function rope(x: Tensor, pos: Tensor, invFreq: Tensor, heads: number, stream?: Stream): void {
  const hd = invFreq.numel * 2;
  const n = x.numel / (heads * hd);
  if (!Number.isInteger(n)) throw new ShapeError(`rope: x ${x.describe()} is not [n, ${heads}, ${hd}]`);
  i32('rope', 'pos', pos, n);
  if (invFreq.dtype !== 'f32') throw new DTypeError('rope: invFreq must be f32');
  sameDevice('rope', x, pos, invFreq);
  native(() => addon().rope(x.nativeHandle, DTYPE_IDS[x.dtype], pos.nativeHandle, invFreq.nativeHandle, n, heads, hd, s(stream)));
}

export interface AttentionShape {
  queryHeads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

/**
 * out[nq, hq, d] = softmax(scale q k^T, keys with kpos <= qpos) v, GQA. q [nq, hq, d], k and v
 * [nk, hkv, d]; qpos [nq], kpos [nk] absolute positions.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, qpos: Tensor, kpos: Tensor, out: Tensor, a: AttentionShape,
  stream?: Stream): void {
  const { queryHeads: hq, kvHeads: hkv, headDim: d } = a;
  const nq = q.numel / (hq * d);
  const nk = k.numel / (hkv * d);
  if (!Number.isInteger(nq) || !Number.isInteger(nk)) throw new ShapeError(`attention: q ${q.describe()} / k ${k.describe()} do not fit heads ${hq}/${hkv} x ${d}`);
  numel('attention', v, k.numel, 'v');
  numel('attention', out, q.numel, 'out');
  i32('attention', 'qpos', qpos, nq);
  i32('attention', 'kpos', kpos, nk);
  sameDtype('attention', q, k, v, out);
  sameDevice('attention', q, k, v, qpos, kpos, out);
  native(() => addon().attention(q.nativeHandle, k.nativeHandle, v.nativeHandle, DTYPE_IDS[q.dtype], qpos.nativeHandle,
    kpos.nativeHandle, out.nativeHandle, nq, nk, hq, hkv, d, a.scale, s(stream)));
}

export interface AttentionMassShape {
  /** Query heads. */
  heads: number;
  kvHeads: number;
  headDim: number;
  scale: number;
}

/**
 * The attention probability mass each key receives from a few queries, summed over the queries and
 * heads: what CacheBlend's query-attention policy ranks context tokens by. q [nq, heads, headDim]
 * and k [nk, kvHeads, headDim] of one float dtype (f32, f16 or bf16, on the CPU too), qpos i32 [nq],
 * kpos i32 [nk] (absolute positions, keys in any order), out f32 [nk]. For each query i and head h
 * (kv head g = floor(h / (heads / kvHeads)), GQA as in `attention`):
 *   p_ij = softmax over the keys j with kpos[j] <= qpos[i] of scale * q_ih . k_jg,
 *   out[j] = sum over i, h of p_ij   (0 for a key no query sees),
 * so sum(out) = the number of (query, head) pairs that see at least one key. Accumulated in double
 * on the CPU, f32 on CUDA; the same bits run to run on both.
 *
 * @example
 *   ops.attentionMass(q, cache.slab(l, 0).rows(0, S), batch.positionsTensor, kpos, mass,
 *     { heads: 32, kvHeads: 8, headDim: 128, scale: 1 / Math.sqrt(128) });
 */
export function attentionMass(q: Tensor, k: Tensor, qpos: Tensor, kpos: Tensor, out: Tensor, a: AttentionMassShape,
  stream?: Stream): void {
  const { heads: hq, kvHeads: hkv, headDim: d, scale } = a;
  for (const [name, v] of [['heads', hq], ['kvHeads', hkv], ['headDim', d]] as const)
    if (!Number.isSafeInteger(v) || v < 1) throw new ArgumentError(`attentionMass: ${name} must be a positive integer, got ${v}`);
  if (hq % hkv !== 0) throw new ArgumentError(`attentionMass: heads ${hq} must be a multiple of kvHeads ${hkv}`);
  if (!Number.isFinite(scale) || scale <= 0) throw new ArgumentError(`attentionMass: scale must be finite and > 0, got ${scale}`);
  if (!isFloatDType(q.dtype)) throw new DTypeError(`attentionMass: q must be f32, f16 or bf16, got ${q.describe()}`);
  sameDtype('attentionMass', q, k);
  const nq = q.numel / (hq * d);
  const nk = k.numel / (hkv * d);
  if (!Number.isInteger(nq)) throw new ShapeError(`attentionMass: q ${q.describe()} is not [nq, ${hq}, ${d}]`);
  if (!Number.isInteger(nk)) throw new ShapeError(`attentionMass: k ${k.describe()} is not [nk, ${hkv}, ${d}]`);
  i32('attentionMass', 'qpos', qpos, nq);
  i32('attentionMass', 'kpos', kpos, nk);
  if (out.dtype !== 'f32') throw new DTypeError(`attentionMass: out must be f32, got ${out.describe()}`);
  numel('attentionMass', out, nk, 'out');
  sameDevice('attentionMass', q, k, qpos, kpos, out);
  native(() => addon().attentionMass(q.nativeHandle, k.nativeHandle, DTYPE_IDS[q.dtype], qpos.nativeHandle, kpos.nativeHandle,
    out.nativeHandle, nq, nk, hq, hkv, d, scale, s(stream)));
}

/** out = silu(gate) * up, element-wise. out may be gate or up. */
export function swiglu(gate: Tensor, up: Tensor, out: Tensor, stream?: Stream): void {
  numel('swiglu', up, gate.numel, 'up');
  numel('swiglu', out, gate.numel, 'out');
  sameDtype('swiglu', gate, up, out);
  sameDevice('swiglu', gate, up, out);
  native(() => addon().swiglu(gate.nativeHandle, up.nativeHandle, out.nativeHandle, DTYPE_IDS[gate.dtype], gate.numel, s(stream)));
}

/** out = a + b, element-wise. out may be a or b. */
export function add(a: Tensor, b: Tensor, out: Tensor, stream?: Stream): void {
  numel('add', b, a.numel, 'b');
  numel('add', out, a.numel, 'out');
  sameDtype('add', a, b, out);
  sameDevice('add', a, b, out);
  native(() => addon().add(a.nativeHandle, b.nativeHandle, out.nativeHandle, DTYPE_IDS[a.dtype], a.numel, s(stream)));
}

function rowBytes(t: Tensor): number {
  const rows = t.shape[0] ?? 0;
  return rows === 0 ? 0 : (t.numel / rows) * DTYPE_BYTES[t.dtype];
}

/** dst[i] = src[idx[i]] along the first dimension. */
export function gatherRows(src: Tensor, idx: Tensor, dst: Tensor, stream?: Stream): void {
  i32('gatherRows', 'idx', idx, dst.shape[0] ?? 0);
  sameDtype('gatherRows', src, dst);
  sameDevice('gatherRows', src, idx, dst);
  const w = rowBytes(src);
  if (rowBytes(dst) !== w && idx.numel > 0) throw new ShapeError(`gatherRows: rows of ${src.describe()} and ${dst.describe()} differ`);
  native(() => addon().gatherRows(src.nativeHandle, src.shape[0] ?? 0, idx.nativeHandle, dst.nativeHandle, idx.numel, w, s(stream)));
}

/**
 * CacheBlend's KV deviation per row: out[r] = sum over the row of (a - b)^2, or out[r] += that with
 * `accumulate` (to add K's and V's). a and b: the same shape [n, ...] and float dtype; out: f32 [n].
 * With `bRows` (i32 [n]), row r of a is compared with row bRows[r] of b ([R, ...], rows of a's
 * width): a token's fresh K/V read straight from a cache slab, with no gathered copy.
 */
export function rowSqDiff(a: Tensor, b: Tensor, out: Tensor, accumulate = false, stream?: Stream, bRows?: Tensor): void {
  sameDtype('rowSqDiff', a, b);
  sameDevice('rowSqDiff', a, b, out);
  const rowShape = (t: Tensor) => t.shape.slice(1);
  const sameRows = a.shape.length > 0 && a.shape.length === b.shape.length && rowShape(a).every((d, i) => d === rowShape(b)[i]);
  if (!sameRows || (!bRows && a.shape[0] !== b.shape[0])) throw new ShapeError(`rowSqDiff: ${a.describe()} and ${b.describe()} differ`);
  const n = a.shape[0]!;
  if (out.dtype !== 'f32' || out.numel !== n) throw new ShapeError(`rowSqDiff: out must be f32 [${n}], got ${out.describe()}`);
  if (bRows) {
    sameDevice('rowSqDiff', a, bRows);
    if (bRows.dtype !== 'i32' || bRows.numel !== n) throw new ShapeError(`rowSqDiff: bRows must be i32 [${n}], got ${bRows.describe()}`);
  }
  native(() => addon().rowSqDiff(a.nativeHandle, b.nativeHandle, out.nativeHandle, DTYPE_IDS[a.dtype], n, n === 0 ? 0 : a.numel / n,
    accumulate, s(stream), bRows?.nativeHandle, b.shape[0]));
}

/**
 * The rows of the k largest values of `v` (f32 [n]), ties to the lower row, in ascending order, into
 * `out` (i32 [k]): CacheBlend's gradual filtering on the device, so the deviations never go to the
 * host. NaN ranks above +Infinity, on every device alike.
 */
export function topKRows(v: Tensor, k: number, out: Tensor, stream?: Stream): void {
  if (v.dtype !== 'f32' || v.shape.length !== 1) throw new DTypeError(`topKRows: v must be f32 [n], got ${v.describe()}`);
  if (!Number.isSafeInteger(k) || k < 0 || k > v.numel) throw new ShapeError(`topKRows: k must be in 0..${v.numel}, got ${k}`);
  if (out.dtype !== 'i32' || out.numel !== k) throw new ShapeError(`topKRows: out must be i32 [${k}], got ${out.describe()}`);
  sameDevice('topKRows', v, out);
  native(() => addon().topKRows(v.nativeHandle, v.numel, k, out.nativeHandle, s(stream)));
}

/** dst[idx[i]] = src[i] along the first dimension; indices must be distinct. */
export function scatterRows(src: Tensor, idx: Tensor, dst: Tensor, stream?: Stream): void {
  i32('scatterRows', 'idx', idx, src.shape[0] ?? 0);
  sameDtype('scatterRows', src, dst);
  sameDevice('scatterRows', src, idx, dst);
  const w = rowBytes(dst);
  if (rowBytes(src) !== w && idx.numel > 0) throw new ShapeError(`scatterRows: rows of ${src.describe()} and ${dst.describe()} differ`);
  native(() => addon().scatterRows(src.nativeHandle, idx.nativeHandle, dst.nativeHandle, dst.shape[0] ?? 0, idx.numel, w, s(stream)));
}

export interface SampleOptions {
  /** <= 0: greedy (first index of the maximum). */
  temperature: number;
  /** Nucleus mass in (0, 1]. */
  topP: number;
  /** A uniform draw in [0, 1) from the caller's seeded generator. */
  u: number;
}

/** Picks a token id from f32 logits [vocab] (native/cpu/ops.h: sample). `scratch`: one i32 on the device. */
export function sample(logits: Tensor, o: SampleOptions, scratch: Tensor | null = null, stream?: Stream): number {
  if (logits.dtype !== 'f32') throw new DTypeError(`sample: logits must be f32, got ${logits.describe()}`);
  if (scratch) sameDevice('sample', logits, scratch);
  return native(() => addon().sample(logits.nativeHandle, logits.numel, o.temperature, o.topP, o.u, scratch?.nativeHandle ?? null, s(stream)));
}

/**
 * Picks a token id from device f32 logits [vocab] into `out` (one i32 on the same device) without
 * reading it back: the next decode step's embedding reads it there (native/cpu/ops.h: sample).
 */
export function sampleQueued(logits: Tensor, o: SampleOptions, out: Tensor, stream?: Stream): void {
  if (logits.dtype !== 'f32') throw new DTypeError(`sampleQueued: logits must be f32, got ${logits.describe()}`);
  if (out.dtype !== 'i32' || out.numel !== 1) throw new ShapeError(`sampleQueued: out must be one i32, got ${out.describe()}`);
  if (!logits.device.isCuda) throw new DeviceError(`sampleQueued needs device logits, got ${logits.describe()}`);
  sameDevice('sampleQueued', logits, out);
  native(() => addon().sample(logits.nativeHandle, logits.numel, o.temperature, o.topP, o.u, out.nativeHandle, s(stream), true));
}

/** Fills `out` with seeded uniform values in [lo, hi): the same bits on the CPU and on CUDA. */
export function fillUniform(out: Tensor, seed: number, lo: number, hi: number, stream?: Stream): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ShapeError(`fillUniform: seed must be a non-negative integer, got ${seed}`);
  native(() => addon().fillUniform(out.nativeHandle, DTYPE_IDS[out.dtype], out.numel, seed, lo, hi, s(stream)));
}
