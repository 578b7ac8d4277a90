/**
 * RoPE re-positioning: K rotated at position p becomes K rotated at position q by one more rotation
 * by q - p (rotations compose: R(q - p) R(p) = R(q)). It is a pure rotation by angles
 * (q - p) * inv_freq, so it holds for plain, linear and Llama-3 scaled RoPE alike: those only change
 * inv_freq (ropeInvFreq folds the scaling in). V carries no position and is unchanged.
 * Uses the engine's rope op, so it runs wherever the chunk KV lives (CPU or CUDA).
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ropeInvFreq } from '../model/rope.js';
import { ArgumentError, ShapeError } from '../runtime/errors.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { checkChunk, makeChunk, type ChunkKV } from './chunk.js';

/**
 * A copy of `chunk` (on the model's device) with K rotated from `chunk.positions` to
 * `newPositions` (one per token). The input chunk is left as it was.
 */
export function repositionChunk(model: Model, chunk: ChunkKV, newPositions: ArrayLike<number>): ChunkKV {
  checkChunk(model, chunk);
  const n = chunk.tokens.length;
  if (newPositions.length !== n) throw new ShapeError(`${n} tokens but ${newPositions.length} new positions`);
  const pos = Int32Array.from(newPositions);
  for (let i = 0; i < n; i++)
    if (!Number.isInteger(newPositions[i]) || pos[i]! < 0 || pos[i]! >= model.config.maxSeqLen)
      throw new ArgumentError(`new position ${newPositions[i]} at index ${i} is outside the model's context [0, ${model.config.maxSeqLen})`);
  const kv = chunk.kv.device.equals(model.device) ? copyOf(chunk.kv) : chunk.kv.to(model.device);
  try {
    rotateSpanK(model, kv, n, Int32Array.from(pos, (q, i) => q - chunk.positions[i]!));
  } catch (e) {
    kv.dispose();
    throw e;
  }
  return makeChunk(chunk.tokens.slice(), kv, pos, chunk.fingerprint);
}

/**
 * Rotates, in place, the K of every layer of a span tensor [nLayers, 2, n, nKvHeads, headDim] by
 * `delta[t]` positions per token (negative deltas rotate back).
 */
export function rotateSpanK(model: Model, kv: Tensor, n: number, delta: Int32Array): void {
  const { nLayers, nKvHeads, headDim } = model.kvLayout;
  if (kv.numel !== nLayers * 2 * n * nKvHeads * headDim) throw new ShapeError(`span ${kv.describe()} is not [${nLayers}, 2, ${n}, ${nKvHeads}, ${headDim}]`);
  if (delta.length !== n) throw new ShapeError(`${n} tokens but ${delta.length} position deltas`);
  if (delta.every((d) => d === 0)) return;
  const invFreq = Tensor.fromTypedArray(ropeInvFreq(model.config), undefined, { device: kv.device });
  const d = Tensor.fromTypedArray(delta, undefined, { device: kv.device });
  try {
    for (let l = 0; l < nLayers; l++) {
      const k = kv.view([n, nKvHeads, headDim], l * 2 * n * nKvHeads * headDim);
      try {
        ops.rope(k, d, invFreq, nKvHeads);
      } finally {
        k.dispose();
      }
    }
  } finally {
    invFreq.dispose();
    d.dispose();
  }
}

/**
 * Re-positions K already sitting in a cache: layer l's slots [start, start + n) are rotated by
 * `delta` ([n] i32 on the cache's device) in one launch. The fusors write chunk KV into the cache
 * as stored and rotate it there, so no rotated copy of a chunk is ever made.
 */
export function rotateCacheRows(model: Model, cache: KVCache, l: number, start: number, delta: Tensor, invFreq: Tensor): void {
  const k = cache.slab(l, 0).rows(start, start + delta.numel);
  try {
    ops.rope(k, delta, invFreq, model.kvLayout.nKvHeads);
  } finally {
    k.dispose();
  }
}

/** Device tensors the rotation needs: RoPE's inverse frequencies and new - old position per token. */
export function rotationInputs(model: Model, oldPositions: Int32Array, newPositions: Int32Array): { invFreq: Tensor; delta: Tensor } {
  if (oldPositions.length !== newPositions.length) throw new ShapeError(`${oldPositions.length} old positions but ${newPositions.length} new ones`);
  const invFreq = Tensor.fromTypedArray(ropeInvFreq(model.config), undefined, { device: model.device });
  const d = new Int32Array(newPositions.length);
  for (let i = 0; i < d.length; i++) d[i] = newPositions[i]! - oldPositions[i]!;
  const delta = Tensor.fromTypedArray(d, undefined, { device: model.device });
  return { invFreq, delta };
}

function copyOf(t: Tensor): Tensor {
  const c = Tensor.empty(t.shape, { dtype: t.dtype, device: t.device });
  c.copyFrom(t);
  return c;
}
