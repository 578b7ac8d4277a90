/**
 * The fusor: an optional exact prefix + precomputed chunk KV + a query -> one KV cache and the
 * query's logits, recomputing only the context tokens a selection policy picks.
 *
 * Fused sequence: prefix at positions 0..P-1, then each chunk's tokens, then the query, at
 * consecutive positions. The cache is built as
 *   1. the prefix, prefilled once (exact: it attends only to itself);
 *   2. each chunk's KV re-positioned (K rotated by the position difference) and appended;
 *   3. slots for the query.
 * Then every layer runs (Model.layer) on the query tokens (always) plus the policy's context tokens
 * at their absolute positions: their fresh K/V overwrite the reused ones in their slots and they
 * attend over every slot at a position <= theirs. Hidden states: x = embed(tokens) on layer 0, and
 * each layer's output rows of the tokens still selected feed the next (rows gathered as the set
 * shrinks; a plan that grows the set is rejected, see policies.ts).
 *
 * @example
 *   const chunks = precomputeChunks(model, [bos], docs);
 *   const r = fuse(model, { prefix: [bos], chunks, query, policy: 'cacheblend', ratio: 0.15 });
 *   // r.logits: f32 [nQuery, vocab]; r.ratio, r.computeFraction, r.schedule; r.cache.dispose()
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ArgumentError, InternalError } from '../runtime/errors.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { checkChunk, type ChunkKV } from './chunk.js';
import { checkRatio, makePolicy, type DeviationKind, type PolicyContext, type PolicyName, type PolicyOptions,
  type SelectionPolicy } from './policies.js';
import { repositionChunk } from './reposition.js';

export interface FuseRequest extends PolicyOptions {
  /** Tokens prefilled exactly at the start (e.g. [BOS]); the chunks were precomputed after the same. */
  prefix: ArrayLike<number>;
  chunks: readonly ChunkKV[];
  /** Tokens after the chunks; always recomputed. At least one. */
  query: ArrayLike<number>;
  /** A policy name (configured by the PolicyOptions fields) or a policy object. */
  policy: PolicyName | SelectionPolicy;
  /** Logits of every query token (default) or of the last one. */
  logits?: 'all' | 'last';
  /** Also return the query's final hidden states (instrument.ts's attention deviation). */
  keepHidden?: boolean;
}

export interface FusedLayout {
  prefixLength: number;
  /** Context tokens N (all chunks). Context token i sits in slot prefixLength + i. */
  contextLength: number;
  chunkStarts: number[];
  chunkLengths: number[];
  queryLength: number;
  /** Every token of the fused sequence (prefix, chunks, query) at positions 0, 1, ... */
  tokens: Int32Array;
}

export interface FuseResult {
  policy: string;
  /** f32 [rows, vocab] flattened: rows = query length ('all') or 1 ('last'). */
  logits: Float32Array;
  /** The fused cache (prefix, chunks, query); the caller disposes it. */
  cache: KVCache;
  /** Recompute ratio r (DESIGN.md): mean share of context tokens recomputed after the check layer(s). */
  ratio: number;
  /** Recomputed context token-layers / (N x layers), check layers included. */
  computeFraction: number;
  /** Per layer: the recomputed context token indices (ascending). */
  selected: Int32Array[];
  /** Per layer: the share of context tokens recomputed. */
  schedule: number[];
  checkLayers: number[];
  /** Per layer: the deviation measured on the recomputed tokens (aligned with selected[l]), or null. */
  deviations: (Float64Array | null)[];
  layout: FusedLayout;
  /** f32 [queryLength, dim]: the query's residual stream after the last layer (with keepHidden). */
  queryHidden?: Float32Array;
}

/** Validated layout of a request: positions and the fused token sequence. */
export function fusedLayout(model: Model, prefix: ArrayLike<number>, chunks: readonly ChunkKV[], queryLength: number): FusedLayout {
  if (chunks.length === 0) throw new ArgumentError('fuse needs at least one chunk');
  chunks.forEach((c, i) => checkChunk(model, c, `chunk ${i}`));
  const chunkLengths = chunks.map((c) => c.tokens.length);
  const chunkStarts: number[] = [];
  let n = 0;
  for (const l of chunkLengths) { chunkStarts.push(n); n += l; }
  const total = prefix.length + n + queryLength;
  if (total > model.config.maxSeqLen)
    throw new ArgumentError(`prefix (${prefix.length}) + chunks (${n}) + query (${queryLength}) = ${total} tokens exceed the model's context of ${model.config.maxSeqLen} tokens`);
  const tokens = new Int32Array(prefix.length + n);
  tokens.set(Int32Array.from(prefix), 0);
  chunks.forEach((c, i) => tokens.set(c.tokens, prefix.length + chunkStarts[i]!));
  return { prefixLength: prefix.length, contextLength: n, chunkStarts, chunkLengths, queryLength, tokens };
}

/**
 * The full-reuse cache: the prefix prefilled, each chunk re-positioned to its place and appended,
 * with `extra` free slots after them (for the query). Caller disposes.
 */
export function buildReusedCache(model: Model, prefix: ArrayLike<number>, chunks: readonly ChunkKV[], layout: FusedLayout, extra: number): KVCache {
  const cache = model.newCache(layout.prefixLength + layout.contextLength + Math.max(extra, 0) || 1);
  try {
    if (prefix.length > 0) model.prefill(prefix, { past: cache, logits: 'none' });
    chunks.forEach((c, i) => {
      const start = layout.prefixLength + layout.chunkStarts[i]!;
      const moved = repositionChunk(model, c, Int32Array.from(c.positions, (_, j) => start + j));
      try {
        cache.appendSpan(moved.kv, moved.positions);
      } finally {
        moved.dispose();
      }
    });
    return cache;
  } catch (e) {
    cache.dispose();
    throw e;
  }
}

export function fuse(model: Model, req: FuseRequest): FuseResult {
  const query = Int32Array.from(req.query);
  if (query.length === 0) throw new ArgumentError('fuse needs at least one query token');
  if (req.ratio !== undefined) checkRatio(req.ratio, 'ratio');
  const policy = typeof req.policy === 'string' ? makePolicy(req.policy, req) : req.policy;
  const lay = fusedLayout(model, req.prefix, req.chunks, query.length);
  const L = model.config.nLayers;
  const P = lay.prefixLength, N = lay.contextLength, Q = query.length;
  const allTokens = new Int32Array(P + N + Q);
  allTokens.set(lay.tokens);
  allTokens.set(query, P + N);
  const layout: FusedLayout = { ...lay, tokens: allTokens };

  const cache = buildReusedCache(model, req.prefix, req.chunks, lay, Q);
  let x: Tensor | null = null;
  try {
    const querySlots = cache.append(Int32Array.from({ length: Q }, (_, i) => P + N + i));
    const ctx: PolicyContext = { nLayers: L, nContext: N, chunkStarts: lay.chunkStarts, chunkLengths: lay.chunkLengths };
    if (policy.needsReference) ctx.trueDeviation = trueDeviation(model, cache, lay);
    const plan = policy.plan(ctx);

    const selected: Int32Array[] = [];
    const deviations: (Float64Array | null)[] = [];
    let sel: Int32Array = Int32Array.from({ length: N }, (_, i) => i);
    let dev: Float64Array | null = null;
    for (let l = 0; l < L; l++) {
      const next = plan.select(l, sel, dev);
      const keep = subsetRows(next, sel, l, policy.name);
      if (l === 0) {
        x = model.embed([...Array.from(next, (i) => allTokens[P + i]!), ...query]);
      } else if (next.length !== sel.length) {
        x = gatherInto(model, x!, [...keep, ...Array.from({ length: Q }, (_, q) => sel.length + q)]);
      }
      sel = next;
      selected.push(sel);
      const slots = [...Array.from(sel, (i) => P + i), ...querySlots];
      const batch = model.batch(slots.map((s) => cache.positions[s]!), slots);
      const kind = sel.length > 0 ? plan.measureAt(l) : null;
      const before = kind ? readRows(cache, l, kind, sel, P) : null;
      try {
        model.layer(l, x!, batch, cache);
      } finally {
        batch.dispose();
      }
      dev = kind && before ? deviation(before, readRows(cache, l, kind, sel, P), sel.length) : null;
      deviations.push(dev);
    }

    const qRows = x!.rows(sel.length + (req.logits === 'last' ? Q - 1 : 0), sel.length + Q);
    let logits: Float32Array, queryHidden: Float32Array | undefined;
    try {
      const t = model.head(qRows);
      logits = t.toTypedArray() as Float32Array;
      t.dispose();
      if (req.keepHidden) {
        const h = x!.rows(sel.length, sel.length + Q);
        queryHidden = h.toFloat32();
        h.dispose();
      }
    } finally {
      qRows.dispose();
    }
    const counts = selected.map((s) => s.length);
    const after = Math.max(-1, ...plan.checkLayers);
    const tail = counts.slice(after + 1);
    const ratio = N === 0 || tail.length === 0 ? 0 : tail.reduce((a, b) => a + b, 0) / (tail.length * N);
    const computeFraction = N === 0 ? 0 : counts.reduce((a, b) => a + b, 0) / (L * N);
    return {
      policy: policy.name, logits, cache, ratio, computeFraction, selected, schedule: counts.map((c) => (N ? c / N : 0)),
      checkLayers: [...plan.checkLayers], deviations, layout, ...(queryHidden ? { queryHidden } : {}),
    };
  } catch (e) {
    cache.dispose();
    throw e;
  } finally {
    x?.dispose();
  }
}

/** Row of each `next` token in `prev` (both ascending); throws if `next` is not a subset. */
function subsetRows(next: Int32Array, prev: Int32Array, l: number, name: string): number[] {
  const rows: number[] = [];
  let j = 0;
  for (let i = 0; i < next.length; i++) {
    while (j < prev.length && prev[j]! < next[i]!) j++;
    if (j === prev.length || prev[j] !== next[i] || (i > 0 && next[i]! <= next[i - 1]!))
      throw new InternalError(`policy ${name} selected context token ${next[i]} on layer ${l}, which is not among the previous layer's selection (a token's hidden state exists only while it stays selected) or not ascending`);
    rows.push(j);
  }
  return rows;
}

/** A new tensor with the given rows of `x` (disposes x). */
function gatherInto(model: Model, x: Tensor, rows: number[]): Tensor {
  const idx = Tensor.fromTypedArray(Int32Array.from(rows), undefined, { device: model.device });
  const out = Tensor.empty([rows.length, model.config.dim], { dtype: x.dtype, device: x.device });
  try {
    ops.gatherRows(x, idx, out);
  } catch (e) {
    out.dispose();
    throw e;
  } finally {
    idx.dispose();
    x.dispose();
  }
  return out;
}

/** Host f32 copies of layer l's K and/or V rows of context tokens `sel` (slots P + i). */
function readRows(cache: KVCache, l: number, kind: DeviationKind, sel: Int32Array, P: number): Float32Array[] {
  const parts = kind === 'kv' ? [0, 1] as const : kind === 'k' ? [0] as const : [1] as const;
  const idx = Tensor.fromTypedArray(Int32Array.from(sel, (i) => P + i), undefined, { device: cache.device });
  try {
    return parts.map((p) => {
      const out = Tensor.empty([sel.length, cache.layout.nKvHeads, cache.layout.headDim], { dtype: cache.dtype, device: cache.device });
      try {
        ops.gatherRows(cache.slab(l, p), idx, out);
        return out.toFloat32();
      } finally {
        out.dispose();
      }
    });
  } finally {
    idx.dispose();
  }
}

/** Per token: sum of squared differences over its row (and over K and V for 'kv'). */
function deviation(before: Float32Array[], after: Float32Array[], n: number): Float64Array {
  const out = new Float64Array(n);
  before.forEach((b, p) => {
    const a = after[p]!;
    const w = b.length / Math.max(n, 1);
    for (let t = 0; t < n; t++) {
      let s = 0;
      for (let j = t * w; j < (t + 1) * w; j++) { const d = a[j]! - b[j]!; s += d * d; }
      out[t]! += s;
    }
  });
  return out;
}

/**
 * Per layer, each context token's deviation ('kv': K and V squared differences summed) between the
 * reused KV in `cache` and the KV of a full prefill of prefix + chunks.
 */
export function trueDeviation(model: Model, cache: KVCache, lay: FusedLayout, kind: DeviationKind = 'kv'): Float64Array[] {
  const ref = model.prefill(lay.tokens, { logits: 'none' });
  try {
    const P = lay.prefixLength, N = lay.contextLength;
    const sel = Int32Array.from({ length: N }, (_, i) => i);
    return Array.from({ length: model.config.nLayers }, (_, l) =>
      deviation(readRows(ref.cache, l, kind, sel, P), readRows(cache, l, kind, sel, P), N));
  } finally {
    ref.cache.dispose();
  }
}
