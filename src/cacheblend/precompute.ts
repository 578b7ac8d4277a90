/**
 * Per-chunk precompute (CacheBlend's offline step): each chunk is prefilled on its own after the
 * same prefix (e.g. [BOS]) at positions prefix.length, prefix.length + 1, ...; the prefix's KV is
 * dropped and the chunk's KV kept with the positions it was rotated at.
 *
 * @example
 *   const chunks = precomputeChunks(model, [model.config.bosId], [doc1, doc2]);
 */
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import { makeChunk, type ChunkKV } from './chunk.js';
import { modelFingerprint } from '../model/fingerprint.js';

export function precomputeChunk(model: Model, prefixTokens: ArrayLike<number>, chunkTokens: ArrayLike<number>): ChunkKV {
  const [c] = precomputeChunks(model, prefixTokens, [chunkTokens]);
  return c!;
}

/** Several chunks after one prefix; the prefix is prefilled once and its KV copied under each chunk. */
export function precomputeChunks(model: Model, prefixTokens: ArrayLike<number>, chunks: readonly ArrayLike<number>[]): ChunkKV[] {
  const p = prefixTokens.length;
  const fp = modelFingerprint(model.config);
  for (const [i, ch] of chunks.entries()) {
    if (ch.length === 0) throw new ArgumentError(`chunk ${i} has no tokens`);
    if (p + ch.length > model.config.maxSeqLen)
      throw new ArgumentError(`prefix (${p}) + chunk ${i} (${ch.length}) = ${p + ch.length} tokens exceed the model's context of ${model.config.maxSeqLen} tokens`);
  }
  const prefix = p > 0 ? model.prefill(prefixTokens, { logits: 'none', capacity: p }) : null;
  const prefixKV = prefix ? prefix.cache.exportSpan() : null;
  prefix?.cache.dispose();
  const out: ChunkKV[] = [];
  try {
    for (const ch of chunks) {
      const cache = model.newCache(p + ch.length);
      try {
        if (prefixKV) cache.appendSpan(prefixKV.kv, prefixKV.positions);
        model.prefill(ch, { past: cache, logits: 'none' });
        const { kv, positions } = cache.exportSpan(p, p + ch.length);
        out.push(makeChunk(Int32Array.from(ch), kv, positions, fp));
      } finally {
        cache.dispose();
      }
    }
  } catch (e) {
    for (const c of out) c.dispose();
    throw e;
  } finally {
    prefixKV?.kv.dispose();
  }
  return out;
}
