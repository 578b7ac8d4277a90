/**
 * The two forward passes every KV-quality evaluation needs: the exact KV of a context (prefilled
 * in one pass, exported as a span in the design's layout), and the logits of a continuation run on
 * top of a given span (exact, decoded from a codec, or altered on purpose), one row per
 * continuation token (row i predicts continuation[i + 1]).
 */
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';

export interface ContextSpan {
  /** [nLayers, 2, n, nKvHeads, headDim] in the model's dtype and device; caller disposes. */
  kv: Tensor;
  positions: Int32Array;
}

/** The exact KV of `tokens` at positions 0..n-1. */
export function contextSpan(model: Model, tokens: readonly number[]): ContextSpan {
  if (tokens.length === 0) throw new ArgumentError('a context needs at least one token');
  const r = model.prefill(tokens, { logits: 'none', capacity: tokens.length });
  try {
    return r.cache.exportSpan();
  } finally {
    r.cache.dispose();
  }
}

/** f32 logits [continuation.length, vocab] of the continuation prefilled after the span's KV. */
export function continuationLogits(model: Model, kv: Tensor, positions: Int32Array, continuation: readonly number[]): Float32Array {
  if (continuation.length === 0) throw new ArgumentError('a continuation needs at least one token');
  const cache = model.newCache(positions.length + continuation.length);
  try {
    cache.appendSpan(kv, positions);
    return model.prefill(continuation, { past: cache, logits: 'all' }).logits;
  } finally {
    cache.dispose();
  }
}

/** max |a - b| / max |b| (DESIGN.md's relative error), over two equal-length arrays. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ArgumentError(`relativeError: ${a.length} vs ${b.length} values`);
  let d = 0, r = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); r = Math.max(r, Math.abs(b[i]!)); }
  return r === 0 ? d : d / r;
}
