/**
 * A pool of reusable device buffers for the forward pass: `get(name, shape)` returns a view of a
 * named buffer that grows to the largest size asked for, so steady-state decoding allocates nothing
 * (cudaMalloc synchronises the device). Views are only valid until the next `get` of that name.
 */
import type { Device } from '../runtime/device.js';
import type { DType } from '../runtime/dtype.js';
import { Tensor, shapeNumel, type Shape } from '../runtime/tensor.js';

export class Scratch {
  private buffers = new Map<string, Tensor>();
  private views: Tensor[] = [];

  constructor(readonly device: Device, readonly dtype: DType) {}

  get(name: string, shape: Shape, dtype: DType = this.dtype): Tensor {
    const key = `${name}:${dtype}`;
    const n = Math.max(shapeNumel(shape), 1);
    let buf = this.buffers.get(key);
    if (!buf || buf.numel < n) {
      buf?.dispose();
      buf = Tensor.empty([n], { dtype, device: this.device });
      this.buffers.set(key, buf);
    }
    const v = buf.view(shape, 0);
    this.views.push(v);
    return v;
  }

  /** Disposes every view handed out so far (the buffers stay for the next pass). */
  release(): void {
    for (const v of this.views) v.dispose();
    this.views = [];
  }

  dispose(): void {
    this.release();
    for (const b of this.buffers.values()) b.dispose();
    this.buffers.clear();
  }
}
