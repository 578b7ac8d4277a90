/**
 * KVCache: the keys and values of a sequence for every layer, in the design's layer-major layout
 * `[layer][k|v][slot][kv_head][head_dim]`, with the absolute position of each slot (the position
 * its K was rotated at). Slots [0, length) are filled. Attention is causal by these positions, not
 * by slot order, so chunks computed separately can sit side by side and tokens can be recomputed in
 * place (CacheBlend).
 */
import { ArgumentError, ShapeError } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import type { Device } from '../runtime/device.js';
import type { DType } from '../runtime/dtype.js';

export interface KVLayout {
  nLayers: number;
  nKvHeads: number;
  headDim: number;
}

export class KVCache {
  /** [nLayers, 2, capacity, nKvHeads, headDim] */
  readonly data: Tensor;
  /** Host mirror of the slot positions; `positionsTensor` holds the same on the cache's device. */
  readonly positions: Int32Array;
  readonly positionsTensor: Tensor;
  private len = 0;
  private readonly slabs: Tensor[] = [];

  constructor(readonly layout: KVLayout, readonly capacity: number, dtype: DType, readonly device: Device) {
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new ArgumentError(`KV cache capacity must be a positive integer, got ${capacity}`);
    this.data = Tensor.empty([layout.nLayers, 2, capacity, layout.nKvHeads, layout.headDim], { dtype, device });
    this.positions = new Int32Array(capacity);
    this.positionsTensor = Tensor.empty([capacity], { dtype: 'i32', device });
  }

  get length(): number {
    return this.len;
  }

  /** The position after the last filled slot's (0 when empty): where the next token goes. */
  get nextPosition(): number {
    return this.len > 0 ? this.positions[this.len - 1]! + 1 : 0;
  }

  get dtype(): DType {
    return this.data.dtype;
  }

  /** Elements in one [slot][kv_head][head_dim] row. */
  get rowWidth(): number {
    return this.layout.nKvHeads * this.layout.headDim;
  }

  /**
   * View of layer `l`'s keys (kv = 0) or values (kv = 1) over all capacity slots. The cache owns
   * these views (made once, freed by dispose()); callers must not dispose them.
   */
  slab(l: number, kv: 0 | 1): Tensor {
    if (!(l >= 0 && l < this.layout.nLayers)) throw new ShapeError(`layer ${l} outside [0, ${this.layout.nLayers})`);
    const i = l * 2 + kv;
    let v = this.slabs[i];
    if (!v) {
      v = this.data.view([this.capacity, this.layout.nKvHeads, this.layout.headDim], i * this.capacity * this.rowWidth);
      this.slabs[i] = v;
    }
    return v;
  }

  /** Appends `positions.length` slots at those positions; returns their slot indices. */
  append(positions: ArrayLike<number>): Int32Array {
    const n = positions.length;
    if (this.len + n > this.capacity) throw new ShapeError(`KV cache holds ${this.capacity} slots; ${this.len} used, ${n} more requested`);
    const slots = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const p = positions[i]!;
      if (!Number.isInteger(p) || p < 0 || p > 2 ** 31 - 1) throw new ArgumentError(`position ${p} at index ${i} is not a non-negative int32`);
      slots[i] = this.len + i;
      this.positions[this.len + i] = p;
    }
    this.positionsTensor.write(this.positions.subarray(this.len, this.len + n), this.len);
    this.len += n;
    return slots;
  }

  /** Sets the positions of existing slots (re-positioning rewrites K separately). */
  setPositions(slots: ArrayLike<number>, positions: ArrayLike<number>): void {
    for (let i = 0; i < slots.length; i++) {
      const s = slots[i]!;
      if (s < 0 || s >= this.len) throw new ShapeError(`slot ${s} is not filled (length ${this.len})`);
      this.positions[s] = positions[i]!;
    }
    this.positionsTensor.write(this.positions.subarray(0, this.len));
  }

  /** Forgets slots [length, ...): the cache keeps its first `length` slots. */
  truncate(length: number): void {
    if (length < 0 || length > this.len) throw new ShapeError(`cannot truncate a KV cache of length ${this.len} to ${length}`);
    this.len = length;
  }

  /**
   * The KV of slots [start, end) as a new tensor [nLayers, 2, end - start, nKvHeads, headDim]
   * (the design's layout for a span), with its positions.
   */
  exportSpan(start = 0, end = this.len): { kv: Tensor; positions: Int32Array } {
    if (!(0 <= start && start <= end && end <= this.len)) throw new ShapeError(`span [${start}, ${end}) outside the filled slots [0, ${this.len})`);
    const n = end - start;
    const { nLayers, nKvHeads, headDim } = this.layout;
    const out = Tensor.empty([nLayers, 2, n, nKvHeads, headDim], { dtype: this.dtype, device: this.device });
    for (let l = 0; l < nLayers; l++) {
      for (const kv of [0, 1] as const) {
        const src = this.slab(l, kv);
        const part = src.rows(start, end);
        const dst = out.view([n, nKvHeads, headDim], (l * 2 + kv) * n * this.rowWidth);
        dst.copyFrom(part);
        for (const t of [part, dst]) t.dispose();
      }
    }
    return { kv: out, positions: this.positions.slice(start, end) };
  }

  /** Appends a span exported by `exportSpan` (same layout, dtype converted if needed). Returns its slots. */
  appendSpan(kv: Tensor, positions: ArrayLike<number>): Int32Array {
    const n = positions.length;
    const { nLayers, nKvHeads, headDim } = this.layout;
    const want = [nLayers, 2, n, nKvHeads, headDim];
    if (kv.numel !== n * 2 * nLayers * this.rowWidth) throw new ShapeError(`span ${kv.describe()} does not match [${want.join(', ')}]`);
    const start = this.len;
    const slots = this.append(positions);
    let src = kv;
    if (!kv.device.equals(this.device)) src = kv.to(this.device);
    if (src.dtype !== this.dtype) {
      const cast = src.cast(this.dtype);
      if (src !== kv) src.dispose();
      src = cast;
    }
    // One strided copy for every layer's K and V: span row-block j = (layer, k|v) of n rows goes to
    // the cache's block j at slot `start`.
    const w = this.rowWidth;
    try {
      this.data.copyStrided(src, { rows: nLayers * 2, width: n * w, dstPitch: this.capacity * w, srcPitch: n * w, dstOffset: start * w });
    } finally {
      if (src !== kv) src.dispose();
    }
    return slots;
  }

  dispose(): void {
    for (const v of this.slabs) v?.dispose();
    this.slabs.length = 0;
    this.data.dispose();
    this.positionsTensor.dispose();
  }
}
