/**
 * ChunkKV: the KV of one text chunk, computed on its own (after a shared prefix such as BOS), in the
 * design's span layout `[layer][k|v][token][kv_head][head_dim]`, with the positions its K was
 * rotated at and the fingerprint of the model that computed it.
 */
import type { Model } from '../model/model.js';
import { ArgumentError, DTypeError, ShapeError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import { modelFingerprint } from '../model/fingerprint.js';

export interface ChunkKV {
  /** The chunk's token ids (the prefix excluded). */
  readonly tokens: Int32Array;
  /** [nLayers, 2, n, nKvHeads, headDim] in the model dtype; the chunk owns it (dispose()). */
  readonly kv: Tensor;
  /** [n]: the absolute positions K was rotated at. */
  readonly positions: Int32Array;
  /** modelFingerprint() of the model that computed it. */
  readonly fingerprint: string;
  dispose(): void;
}

export function makeChunk(tokens: Int32Array, kv: Tensor, positions: Int32Array, fingerprint: string): ChunkKV {
  return { tokens, kv, positions, fingerprint, dispose() { kv.dispose(); } };
}

/**
 * Checks that `chunk` can be used with `model`: same fingerprint, KV of shape
 * [nLayers, 2, n, nKvHeads, headDim] with n = tokens = positions, in the model's dtype.
 * Throws ArgumentError (fingerprint), ShapeError (shape) or DTypeError (dtype), naming the chunk.
 */
export function checkChunk(model: Model, chunk: ChunkKV, name = 'chunk'): void {
  const fp = modelFingerprint(model.config);
  if (chunk.fingerprint !== fp)
    throw new ArgumentError(`${name} was computed by model ${chunk.fingerprint}, but this model is ${fp}`);
  const { nLayers, nKvHeads, headDim } = model.kvLayout;
  const n = chunk.tokens.length;
  if (n === 0) throw new ShapeError(`${name} has no tokens`);
  if (chunk.positions.length !== n) throw new ShapeError(`${name} has ${n} tokens but ${chunk.positions.length} positions`);
  const want = [nLayers, 2, n, nKvHeads, headDim];
  if (chunk.kv.shape.length !== 5 || chunk.kv.shape.some((d, i) => d !== want[i]))
    throw new ShapeError(`${name} KV is ${chunk.kv.describe()}, expected [${want.join(', ')}]`);
  if (chunk.kv.dtype !== model.dtype) throw new DTypeError(`${name} KV is ${chunk.kv.dtype}, but the model computes in ${model.dtype}`);
}
