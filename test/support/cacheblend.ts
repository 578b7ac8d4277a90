/** Shared by the CPU and GPU CacheBlend tests. */
import * as assert from 'uvu/assert';
import { fuse, repositionChunk, type ChunkKV, type FuseRequest, type SelectionPolicy } from '../../src/cacheblend/index.js';
import type { Model } from '../../src/model/model.js';
import { relErr } from './reference.js';

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

/** Fuses `req` with policies a and b and asserts the same sets, deviations and logits, bit for bit. */
export function assertSameFusion(m: Model, req: Omit<FuseRequest, 'policy'>, a: SelectionPolicy, b: SelectionPolicy, label: string): void {
  const ra = fuse(m, { ...req, policy: a }), rb = fuse(m, { ...req, policy: b });
  try {
    assert.equal(ra.selected.map((s) => Array.from(s)), rb.selected.map((s) => Array.from(s)), `${label}: sets`);
    assert.equal(ra.deviations.map((d) => d && Array.from(d)), rb.deviations.map((d) => d && Array.from(d)), `${label}: deviations`);
    assert.equal(relErr(ra.logits, rb.logits), 0, `${label}: logits`);
  } finally {
    for (const r of [ra, rb]) r.cache.dispose();
  }
}
