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

/** `fn` with `slots` as an i32 tensor on the cache's device (uploaded for the call when given on the host). */
function withSlots<T>(cache: KVCache, slots: Int32Array | Tensor, fn: (idx: Tensor) => T): T {
  if (slots instanceof Tensor) return fn(slots);
  const idx = Tensor.fromTypedArray(slots, undefined, { device: cache.device });
  try {
    return fn(idx);
  } finally {
    idx.dispose();
  }
}

/** Device copies of layer l's K and/or V rows in `slots` (host, or i32 on the cache's device; the caller disposes them). */
export function snapshotRows(cache: KVCache, l: number, kind: DeviationKind, slots: Int32Array | Tensor): Tensor[] {
  return withSlots(cache, slots, (idx) => {
    const out: Tensor[] = [];
    try {
      for (const p of parts(kind)) {
        const t = Tensor.empty([idx.numel, cache.layout.nKvHeads, cache.layout.headDim], { dtype: cache.dtype, device: cache.device });
        out.push(t);
        ops.gatherRows(cache.slab(l, p), idx, t);
      }
      return out;
    } catch (e) {
      for (const t of out) t.dispose();
      throw e;
    }
  });
}

/**
 * Per slot, on the device: the deviation between `before` (a snapshotRows of the same kind and slots)
 * and the cache now, read in place; f32 [slots], into `out` when given, else a new tensor (the
 * caller owns either).
 */
export function rowDeviationOnDevice(cache: KVCache, l: number, kind: DeviationKind, slots: Int32Array | Tensor, before: readonly Tensor[],
  out?: Tensor): Tensor {
  return withSlots(cache, slots, (idx) => {
    const sums = out ?? Tensor.empty([idx.numel], { dtype: 'f32', device: cache.device });
    try {
      parts(kind).forEach((p, i) => ops.rowSqDiff(before[i]!, cache.slab(l, p), sums, i > 0, undefined, idx));
      return sums;
    } catch (e) {
      if (sums !== out) sums.dispose();
      throw e;
    }
  });
}

/** rowDeviationOnDevice read back to the host (n floats, not n x width values). */
export function rowDeviation(cache: KVCache, l: number, kind: DeviationKind, slots: Int32Array, before: readonly Tensor[]): Float64Array {
  const sums = rowDeviationOnDevice(cache, l, kind, slots, before);
  try {
    return Float64Array.from(sums.toTypedArray() as Float32Array);
  } finally {
    sums.dispose();
  }
}
