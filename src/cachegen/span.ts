/** Checks of a KV span and of a host copy the native encoder can read. */
import { ArgumentError, DTypeError, ShapeError } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import type { KVSpan } from './codec.js';

export interface SpanDims {
  nLayers: number;
  n: number;
  nKvHeads: number;
  headDim: number;
}

/** Validates a span and returns its dims ([layers, tokens, heads, headDim] for the addon). */
export function checkSpan(span: KVSpan, what = 'span'): SpanDims {
  if (!span || typeof span !== 'object') throw new ArgumentError(`Expected a KV ${what} object but received ${typeof span}`);
  const { kv, positions, fingerprint } = span;
  if (!(kv instanceof Tensor)) throw new ArgumentError(`Expected ${what}.kv to be a Tensor`);
  if (kv.shape.length !== 5 || kv.shape[1] !== 2)
    throw new ShapeError(`Expected ${what}.kv to be [nLayers, 2, n, nKvHeads, headDim] but received ${kv.describe()}`);
  if (kv.dtype !== 'f32' && kv.dtype !== 'f16' && kv.dtype !== 'bf16')
    throw new DTypeError(`Expected ${what}.kv to be f32, f16 or bf16 but received ${kv.dtype}`);
  const [nLayers, , n, nKvHeads, headDim] = kv.shape as [number, number, number, number, number];
  if (nLayers < 1 || n < 1 || nKvHeads < 1 || headDim < 1) throw new ShapeError(`${what}.kv ${kv.describe()} is empty`);
  if (!(positions instanceof Int32Array)) throw new ArgumentError(`Expected ${what}.positions to be an Int32Array`);
  if (positions.length !== n) throw new ShapeError(`${what} has ${n} tokens but ${positions.length} positions`);
  if (typeof fingerprint !== 'string') throw new ArgumentError(`Expected ${what}.fingerprint to be a string`);
  return { nLayers, n, nKvHeads, headDim };
}

export function dimsArray(d: SpanDims): number[] {
  return [d.nLayers, d.n, d.nKvHeads, d.headDim];
}

/** The span's KV on the host (the tensor itself when already there; else a copy the caller disposes). */
export function hostKv(kv: Tensor): { t: Tensor; owned: boolean } {
  return kv.device.isCuda ? { t: kv.to('cpu'), owned: true } : { t: kv, owned: false };
}
