/**
 * KV deviation of context tokens on one layer: per token, the sum over kv heads and head_dim of
 * (a - b)^2 of K, of V, or of both added ('kv'). The rows are gathered on the cache's device and
 * only the per-token sums come back to the host (on CUDA: n floats, not n x width values).
 */
import type { KVCache } from '../model/kv-cache.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import type { DeviationKind } from './policies.js';

function parts(kind: DeviationKind): readonly (0 | 1)[] {
  return kind === 'kv' ? [0, 1] : kind === 'k' ? [0] : [1];
}

/** Device copies of layer l's K and/or V rows in `slots` (the caller disposes them). */
export function snapshotRows(cache: KVCache, l: number, kind: DeviationKind, slots: Int32Array): Tensor[] {
  const idx = Tensor.fromTypedArray(slots, undefined, { device: cache.device });
  const out: Tensor[] = [];
  try {
    for (const p of parts(kind)) {
      const t = Tensor.empty([slots.length, cache.layout.nKvHeads, cache.layout.headDim], { dtype: cache.dtype, device: cache.device });
      out.push(t);
      ops.gatherRows(cache.slab(l, p), idx, t);
    }
    return out;
  } catch (e) {
    for (const t of out) t.dispose();
    throw e;
  } finally {
    idx.dispose();
  }
}

/** Per slot: the deviation between `before` (a snapshotRows of the same kind and slots) and the cache now. */
export function rowDeviation(cache: KVCache, l: number, kind: DeviationKind, slots: Int32Array, before: readonly Tensor[]): Float64Array {
  const after = snapshotRows(cache, l, kind, slots);
  const sums = Tensor.empty([slots.length], { dtype: 'f32', device: cache.device });
  try {
    after.forEach((a, i) => ops.rowSqDiff(a, before[i]!, sums, i > 0));
    return Float64Array.from(sums.toTypedArray() as Float32Array);
  } finally {
    for (const t of [...after, sums]) t.dispose();
  }
}
