/**
 * The pipelined fusor: CacheBlend with chunk KV arriving layer by layer from a storage tier
 * (LayerSource), loading layer l+1 (and up to `prefetch` layers ahead) while layer l is recomputed,
 * as the paper's loading controller assumes. Same selection and result as `fuse`; only where the
 * reused KV comes from differs.
 *
 * Per layer l: wait for every chunk's layer l to land in its cache slots (sources with `loadInto`
 * copy straight there, others hand a tensor that is copied in), rotate those K rows to their fused
 * positions (RoPE by the position difference, on the compute stream), then run selective
 * recompute for layer l. Policies that need a full prefill (oracle) are refused: they would load
 * everything first, which is not a pipeline.
 */
import { modelFingerprint } from '../model/fingerprint.js';
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ArgumentError, ShapeError } from '../runtime/errors.js';
import { iota } from '../runtime/int-arrays.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { fillPrefix, layoutOf, policyContext, resolvePolicy, runSelective, type FuseRequest, type FuseResult, type FusedLayout } from './fusor.js';
import type { LayerSource } from './layer-source.js';
import { DEFAULT_PREFETCH } from './prefetch.js';
import { rotateCacheRows, rotationInputs } from './reposition.js';

/** A chunk whose KV is not in memory yet: its tokens, positions and fingerprint, and where its layers come from. */
export interface StreamedChunk {
  readonly tokens: Int32Array;
  /** [n]: the positions its K was rotated at. */
  readonly positions: Int32Array;
  readonly fingerprint: string;
  readonly source: LayerSource;
}

export interface PipelinedFuseRequest extends Omit<FuseRequest, 'chunks'> {
  chunks: readonly StreamedChunk[];
  /** Layers requested ahead of the one being recomputed (at least 1; default DEFAULT_PREFETCH). */
  prefetch?: number;
}

export interface PipelinedFuseResult extends FuseResult {
  /** Per layer: ms the recompute waited for that layer's KV (0 when loading was hidden). */
  loadWaitMs: number[];
}

export async function fusePipelined(model: Model, req: PipelinedFuseRequest): Promise<PipelinedFuseResult> {
  const query = Int32Array.from(req.query);
  if (query.length === 0) throw new ArgumentError('fuse needs at least one query token');
  const policy = resolvePolicy(req);
  if (policy.needsReference)
    throw new ArgumentError(`policy ${policy.name} needs the full prefill's KV before the first layer runs; use fuse() with the chunk KV in memory`);
  if (policy.queryAttentionLayers !== undefined)
    throw new ArgumentError(`policy ${policy.name} needs every chunk's KV for its query pre-pass before the first layer runs; use fuse() with the chunk KV in memory`);
  const prefetch = req.prefetch ?? DEFAULT_PREFETCH;
  if (!Number.isInteger(prefetch) || prefetch < 1) throw new ArgumentError(`prefetch must be a positive integer, got ${prefetch}`);
  req.chunks.forEach((c, i) => checkStreamed(model, c, i));
  const lay = layoutOf(model, req.prefix, req.chunks.map((c) => c.tokens), query.length);
  const P = lay.prefixLength, N = lay.contextLength, L = model.config.nLayers;

  const cache = model.newCache(P + N + query.length);
  const loads: Promise<void>[] = [];
  const helpers: Tensor[] = [];
  try {
    fillPrefix(model, cache, req.prefix, req.prefixKV);
    cache.append(iota(N, P));
    const oldPos = new Int32Array(N);
    req.chunks.forEach((c, i) => oldPos.set(c.positions, lay.chunkStarts[i]!));
    const { invFreq, delta } = rotationInputs(model, oldPos, iota(N, P));
    helpers.push(invFreq, delta);
    const start = (l: number) => { if (l < L && loads.length === l) loads.push(loadLayer(model, cache, lay, req.chunks, l)); };
    const loadWaitMs: number[] = [];
    const result = await runSelective(model, cache, lay, query, policy, policyContext(model, lay), req, async (run) => {
      for (let l = 0; l < L; l++) {
        for (let a = l; a <= l + prefetch - 1; a++) start(a);
        const t0 = performance.now();
        await loads[l];
        loadWaitMs.push(performance.now() - t0);
        start(l + prefetch);
        rotateCacheRows(model, cache, l, P, delta, invFreq);
        run.step(l);
      }
    });
    return { ...result, loadWaitMs };
  } catch (e) {
    // Copies may still be writing into the cache: let every started load settle before freeing it.
    await Promise.allSettled(loads);
    cache.dispose();
    throw e;
  } finally {
    for (const t of helpers) t.dispose();
  }
}

function checkStreamed(model: Model, c: StreamedChunk, i: number): void {
  const fp = modelFingerprint(model.config);
  if (c.fingerprint !== fp) throw new ArgumentError(`chunk ${i} was computed by model ${c.fingerprint}, but this model is ${fp}`);
  if (c.tokens.length === 0) throw new ShapeError(`chunk ${i} has no tokens`);
  if (c.positions.length !== c.tokens.length) throw new ShapeError(`chunk ${i} has ${c.tokens.length} tokens but ${c.positions.length} positions`);
  if (c.source.layers !== model.config.nLayers)
    throw new ShapeError(`chunk ${i}'s source has ${c.source.layers} layers, the model ${model.config.nLayers}`);
}

/** Every chunk's layer l into its cache slots (K still at the chunk's own positions). */
async function loadLayer(model: Model, cache: KVCache, lay: FusedLayout, chunks: readonly StreamedChunk[], l: number): Promise<void> {
  await Promise.all(chunks.map(async (c, i) => {
    const s = lay.prefixLength + lay.chunkStarts[i]!, n = c.tokens.length;
    const k = cache.slab(l, 0).rows(s, s + n), v = cache.slab(l, 1).rows(s, s + n);
    try {
      if (c.source.loadInto) return await c.source.loadInto(l, k, v);
      const kv = await c.source.load(l);
      try {
        const { nKvHeads, headDim } = model.kvLayout;
        if (kv.numel !== 2 * n * nKvHeads * headDim)
          throw new ShapeError(`chunk ${i} layer ${l}: got ${kv.describe()}, expected [2, ${n}, ${nKvHeads}, ${headDim}]`);
        for (const [part, dst] of [[0, k], [1, v]] as const) {
          const src = kv.view([n, nKvHeads, headDim], part * n * nKvHeads * headDim);
          try {
            if (src.dtype === dst.dtype) dst.copyFrom(src);
            else {
              const moved = src.device.equals(dst.device) ? null : src.to(dst.device);
              try { (moved ?? src).castInto(dst); } finally { moved?.dispose(); }
            }
          } finally {
            src.dispose();
          }
        }
      } finally {
        kv.dispose();
      }
    } finally {
      k.dispose();
      v.dispose();
    }
  }));
}
