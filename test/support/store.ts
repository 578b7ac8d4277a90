// Helpers for the store tests: seeded raw KV entries and byte-exact comparison.
import { rng } from './reference.js';
import { Tensor } from '../../src/runtime/tensor.js';
import type { RawEntry } from '../../src/store/index.js';

/** A raw entry [layers, 2, n, heads, dim] in f16 with seeded values (never zeros). */
export function rawEntry(seed: number, layers = 3, n = 19, heads = 2, dim = 8): RawEntry {
  const u = rng(seed);
  const data = Float32Array.from({ length: layers * 2 * n * heads * dim }, () => u() * 2 - 1 || 0.5);
  const kv = Tensor.fromTypedArray(data, [layers, 2, n, heads, dim], { dtype: 'f16' });
  return { kind: 'raw', kv, positions: Int32Array.from({ length: n }, (_, i) => 100 + i), fingerprint: 'test/L3/fp' };
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}
