/** Shared by the CPU and GPU CacheBlend tests. */
import { repositionChunk, type ChunkKV } from '../../src/cacheblend/index.js';
import type { Model } from '../../src/model/model.js';

/** Full reuse built by hand: prefix prefilled, each chunk re-positioned and appended, query prefilled on top. */
export function concatenatedLogits(m: Model, prefix: number[], cs: ChunkKV[], query: number[]): Float32Array {
  const n = cs.reduce((a, c) => a + c.tokens.length, 0);
  const cache = m.newCache(prefix.length + n + query.length);
  m.prefill(prefix, { past: cache, logits: 'none' });
  let at = prefix.length;
  for (const c of cs) {
    const moved = repositionChunk(m, c, c.tokens.map((_, j) => at + j));
    cache.appendSpan(moved.kv, moved.positions);
    moved.dispose();
    at += c.tokens.length;
  }
  const r = m.prefill(query, { past: cache, logits: 'all' });
  cache.dispose();
  return r.logits;
}
