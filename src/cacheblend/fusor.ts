/**
 * The fusor: an optional exact prefix + precomputed chunk KV + a query -> one KV cache and the
 * query's logits, recomputing only the context tokens a selection policy picks.
 *
 * Fused sequence: prefix at positions 0..P-1, then each chunk's tokens, then the query, at
 * consecutive positions. The cache is built as
 *   1. the prefix, prefilled once (exact: it attends only to itself);
 *   2. each chunk's KV re-positioned (K rotated by the position difference) and appended;
 *   3. slots for the query.
 * Then every layer runs selective recompute (selective.ts) on the query tokens plus the policy's
 * context tokens. `fusePipelined` (pipeline.ts) does the same with chunk KV arriving layer by layer.
 *
 * @example
 *   const chunks = precomputeChunks(model, [bos], docs);
 *   const r = fuse(model, { prefix: [bos], chunks, query, policy: 'cacheblend', ratio: 0.15 });
 *   // r.logits: f32 [nQuery, vocab]; r.ratio, r.computeFraction, r.schedule; r.cache.dispose()
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import { iota } from '../runtime/int-arrays.js';
import { checkChunk, type ChunkKV } from './chunk.js';
import { rowDeviation, snapshotRows } from './deviation.js';
import { checkRatio, makePolicy, type DeviationKind, type PolicyContext, type PolicyOptions, type PolicyName,
  type SelectionPolicy } from './policies.js';
import { queryAttentionMass } from './query-attention.js';
import { rotateCacheRows, rotationInputs } from './reposition.js';
import { SelectiveRecompute, type SelectiveOutcome } from './selective.js';

export interface FuseRequest extends PolicyOptions {
  /** Tokens prefilled exactly at the start (e.g. [BOS]); the chunks were precomputed after the same. */
  prefix: ArrayLike<number>;
  /**
   * The prefix's KV computed once (a cached system prompt: `precomputeChunk(model, [], prefix)`),
   * used instead of prefilling the prefix on every request. Its tokens must equal `prefix`, at
   * positions 0..P-1.
   */
  prefixKV?: ChunkKV;
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

/** The selection outcome (ratio, compute fraction, per-layer sets: selective.ts) plus what fusing made. */
export interface FuseResult extends SelectiveOutcome {
  policy: string;
  /** f32 [rows, vocab] flattened: rows = query length ('all') or 1 ('last'). */
  logits: Float32Array;
  /** The fused cache (prefix, chunks, query); the caller disposes it. */
  cache: KVCache;
  layout: FusedLayout;
  /** f32 [queryLength, dim]: the query's residual stream after the last layer (with keepHidden). */
  queryHidden?: Float32Array;
}

/** Validated layout of a request: positions and the fused token sequence. */
export function fusedLayout(model: Model, prefix: ArrayLike<number>, chunks: readonly ChunkKV[], queryLength: number): FusedLayout {
  if (chunks.length === 0) throw new ArgumentError('fuse needs at least one chunk');
  chunks.forEach((c, i) => checkChunk(model, c, `chunk ${i}`));
  return layoutOf(model, prefix, chunks.map((c) => c.tokens), queryLength);
}

/** The layout of prefix + chunks (by their tokens) + a query of `queryLength`, checked against the context. */
export function layoutOf(model: Model, prefix: ArrayLike<number>, chunkTokens: readonly Int32Array[], queryLength: number): FusedLayout {
  if (chunkTokens.length === 0) throw new ArgumentError('fuse needs at least one chunk');
  const chunkLengths = chunkTokens.map((t) => t.length);
  const chunkStarts: number[] = [];
  let n = 0;
  for (const l of chunkLengths) { chunkStarts.push(n); n += l; }
  const total = prefix.length + n + queryLength;
  if (total > model.config.maxSeqLen)
    throw new ArgumentError(`prefix (${prefix.length}) + chunks (${n}) + query (${queryLength}) = ${total} tokens exceed the model's context of ${model.config.maxSeqLen} tokens`);
  const tokens = new Int32Array(prefix.length + n);
  tokens.set(Int32Array.from(prefix), 0);
  chunkTokens.forEach((t, i) => tokens.set(t, prefix.length + chunkStarts[i]!));
  return { prefixLength: prefix.length, contextLength: n, chunkStarts, chunkLengths, queryLength, tokens };
}

/**
 * The full-reuse cache: the prefix prefilled, each chunk re-positioned to its place and appended,
 * with `extra` free slots after them (for the query). Caller disposes.
 */
export function buildReusedCache(model: Model, prefix: ArrayLike<number>, chunks: readonly ChunkKV[], layout: FusedLayout, extra: number,
  prefixKV?: ChunkKV): KVCache {
  const cache = model.newCache(layout.prefixLength + layout.contextLength + Math.max(extra, 0) || 1);
  try {
    fillPrefix(model, cache, prefix, prefixKV);
    // Each chunk's KV goes in as stored (one strided copy each), then every layer's context K is
    // rotated to the fused positions in one launch (RoPE by the position difference).
    const P = layout.prefixLength, N = layout.contextLength;
    const oldPos = new Int32Array(N), newPos = iota(N, P);
    chunks.forEach((c, i) => {
      oldPos.set(c.positions, layout.chunkStarts[i]!);
      cache.appendSpan(c.kv, newPos.subarray(layout.chunkStarts[i]!, layout.chunkStarts[i]! + c.tokens.length));
    });
    const { invFreq, delta } = rotationInputs(model, oldPos, newPos);
    try {
      for (let l = 0; l < model.config.nLayers; l++) rotateCacheRows(model, cache, l, P, delta, invFreq);
    } finally {
      invFreq.dispose();
      delta.dispose();
    }
    return cache;
  } catch (e) {
    cache.dispose();
    throw e;
  }
}

/** The exact prefix into an empty cache: its cached KV when given (checked), else a prefill. */
export function fillPrefix(model: Model, cache: KVCache, prefix: ArrayLike<number>, prefixKV?: ChunkKV): void {
  const P = prefix.length;
  if (!prefixKV) {
    if (P > 0) model.prefill(prefix, { past: cache, logits: 'none' });
    return;
  }
  checkChunk(model, prefixKV, 'prefixKV');
  if (prefixKV.tokens.length !== P || prefixKV.tokens.some((t, i) => t !== prefix[i]))
    throw new ArgumentError(`prefixKV holds tokens [${Array.from(prefixKV.tokens.slice(0, 8)).join(', ')}${P > 8 ? ', ...' : ''}], not the prefix's`);
  if (prefixKV.positions.some((p, i) => p !== i)) throw new ArgumentError('prefixKV must sit at positions 0..P-1 (it is the exact start of the sequence)');
  cache.appendSpan(prefixKV.kv, prefixKV.positions);
}

export function fuse(model: Model, req: FuseRequest): FuseResult {
  const query = Int32Array.from(req.query);
  if (query.length === 0) throw new ArgumentError('fuse needs at least one query token');
  const policy = resolvePolicy(req);
  const lay = fusedLayout(model, req.prefix, req.chunks, query.length);
  const cache = buildReusedCache(model, req.prefix, req.chunks, lay, query.length, req.prefixKV);
  try {
    const ctx = policyContext(model, lay);
    if (policy.needsReference) ctx.trueDeviation = trueDeviation(model, cache, lay);
    const [qaFrom, qaLayers] = policy.queryAttentionLayers?.(model.config.nLayers) ?? [0, undefined];
    if (qaLayers !== undefined)
      ctx.queryAttention = queryAttentionMass(model, cache, lay.prefixLength, lay.contextLength, query, qaLayers, qaFrom);
    const r = runSelective(model, cache, lay, query, policy, ctx, req, (run) => {
      for (let l = 0; l < model.config.nLayers; l++) run.step(l);
    });
    // The query-attention pre-pass ran Q rows through qaLayers layers: counted as that many token-layers.
    if (qaLayers !== undefined && lay.contextLength > 0)
      r.computeFraction += (query.length * qaLayers) / (lay.contextLength * model.config.nLayers);
    return r;
  } catch (e) {
    cache.dispose();
    throw e;
  }
}

/** The request's policy object (a name is configured by the request's PolicyOptions fields). */
export function resolvePolicy(req: Pick<FuseRequest, 'policy' | keyof PolicyOptions>): SelectionPolicy {
  if (req.ratio !== undefined) checkRatio(req.ratio, 'ratio');
  return typeof req.policy === 'string' ? makePolicy(req.policy, req) : req.policy;
}

export function policyContext(model: Model, lay: FusedLayout): PolicyContext {
  return { nLayers: model.config.nLayers, nContext: lay.contextLength, chunkStarts: lay.chunkStarts, chunkLengths: lay.chunkLengths };
}

/**
 * Appends the query's slots to `cache` (which holds prefix + context slots), runs `layers` (which
 * calls run.step(l) for every layer in order, with layer l's context KV in the cache by then) and
 * reads the query's logits. The cache is returned in the result (or disposed by the caller on error).
 */
export function runSelective(model: Model, cache: KVCache, lay: FusedLayout, query: Int32Array, policy: SelectionPolicy,
  ctx: PolicyContext, req: Pick<FuseRequest, 'logits' | 'keepHidden'>, layers: (run: SelectiveRecompute) => void): FuseResult;
export function runSelective(model: Model, cache: KVCache, lay: FusedLayout, query: Int32Array, policy: SelectionPolicy,
  ctx: PolicyContext, req: Pick<FuseRequest, 'logits' | 'keepHidden'>, layers: (run: SelectiveRecompute) => Promise<void>): Promise<FuseResult>;
export function runSelective(model: Model, cache: KVCache, lay: FusedLayout, query: Int32Array, policy: SelectionPolicy,
  ctx: PolicyContext, req: Pick<FuseRequest, 'logits' | 'keepHidden'>,
  layers: (run: SelectiveRecompute) => void | Promise<void>): FuseResult | Promise<FuseResult> {
  const P = lay.prefixLength, N = lay.contextLength, Q = query.length;
  const tokens = new Int32Array(P + N + Q);
  tokens.set(lay.tokens);
  tokens.set(query, P + N);
  const layout: FusedLayout = { ...lay, tokens };
  const querySlots = cache.append(Int32Array.from({ length: Q }, (_, i) => P + N + i));
  const run = new SelectiveRecompute(model, cache, tokens, P, N, querySlots, policy, ctx);
  const finish = (): FuseResult => {
    const rows = run.queryRows(req.logits === 'last' ? 'last' : 'all');
    let logits: Float32Array, queryHidden: Float32Array | undefined;
    try {
      const t = model.head(rows);
      logits = t.toTypedArray() as Float32Array;
      t.dispose();
      if (req.keepHidden) {
        const h = run.queryRows('all');
        queryHidden = h.toFloat32();
        h.dispose();
      }
    } finally {
      rows.dispose();
    }
    return { policy: policy.name, logits, cache, ...run.outcome(), layout, ...(queryHidden ? { queryHidden } : {}) };
  };
  let pending: void | Promise<void>;
  try {
    pending = layers(run);
  } catch (e) {
    run.dispose();
    throw e;
  }
  if (pending instanceof Promise) return pending.then(finish).finally(() => run.dispose());
  try {
    return finish();
  } finally {
    run.dispose();
  }
}

/**
 * Per layer, each context token's deviation ('kv': K and V squared differences summed) between the
 * reused KV in `cache` and the KV of a full prefill of prefix + chunks.
 */
export function trueDeviation(model: Model, cache: KVCache, lay: FusedLayout, kind: DeviationKind = 'kv'): Float64Array[] {
  const ref = model.prefill(lay.tokens, { logits: 'none' });
  try {
    const slots = Int32Array.from({ length: lay.contextLength }, (_, i) => lay.prefixLength + i);
    return Array.from({ length: model.config.nLayers }, (_, l) => {
      const exact = snapshotRows(ref.cache, l, kind, slots);
      try {
        return rowDeviation(cache, l, kind, slots, exact);
      } finally {
        for (const t of exact) t.dispose();
      }
    });
  } finally {
    ref.cache.dispose();
  }
}
