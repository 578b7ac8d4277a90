/**
 * LayerSource: per-layer KV of a chunk arriving asynchronously (from a storage tier, over a
 * network, or already in memory). CacheBlend consumes this interface; the store implements it; tests
 * fake it. Layer l yields a tensor [2, n, kvHeads, headDim] (K then V) in the design's layout.
 */
import { Device, type DeviceSpec } from '../runtime/device.js';
import type { Stream } from '../runtime/stream.js';
import type { Tensor } from '../runtime/tensor.js';
import type { ChunkKV } from './chunk.js';

export interface LayerSource {
  readonly layers: number;
  /** Resolves with layer l's K and V ([2, n, kvHeads, headDim]); the caller disposes the tensor. */
  load(layer: number): Promise<Tensor>;
  /**
   * Optional: writes layer l's K and V straight into `k` and `v` ([n, kvHeads, headDim] each, e.g.
   * views of the fused cache's slots) and resolves when they have landed. Saves a copy per layer.
   */
  loadInto?(layer: number, k: Tensor, v: Tensor): Promise<void>;
}

/** Layer l's K (part 0) or V (part 1) of a chunk: a view [n, kvHeads, headDim] the caller disposes. */
function partView(chunk: ChunkKV, layer: number, part: 0 | 1): Tensor {
  const [, , n = 0, h = 0, d = 0] = chunk.kv.shape;
  return chunk.kv.view([n, h, d], (layer * 2 + part) * n * h * d);
}

/** A LayerSource over a chunk already in memory, optionally delaying each layer (to model a tier). */
export function memoryLayerSource(chunk: ChunkKV, delayMs = 0): LayerSource {
  const [layers = 0, , n = 0, h = 0, d = 0] = chunk.kv.shape;
  return {
    layers,
    async load(layer: number): Promise<Tensor> {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      const view = chunk.kv.view([2, n, h, d], layer * 2 * n * h * d);
      const copy = view.to(chunk.kv.device);
      view.dispose();
      return copy;
    },
  };
}

/**
 * The CPU tier on a CUDA machine: chunk KV in (pinned) host memory, each layer copied to `device`
 * on `stream` (a copy stream apart from the compute), so the copy of layer l+1 overlaps the
 * recompute of layer l. Without pinned memory the copies still work but do not overlap.
 */
export function hostLayerSource(chunk: ChunkKV, device: DeviceSpec, stream?: Stream): LayerSource {
  const dev = Device.parse(device);
  const [layers = 0, , n = 0, h = 0, d = 0] = chunk.kv.shape;
  return {
    layers,
    async load(layer: number): Promise<Tensor> {
      const view = chunk.kv.view([2, n, h, d], layer * 2 * n * h * d);
      try {
        return await view.toAsync(dev, stream);
      } finally {
        view.dispose();
      }
    },
    async loadInto(layer: number, k: Tensor, v: Tensor): Promise<void> {
      const src = [partView(chunk, layer, 0), partView(chunk, layer, 1)];
      try {
        await Promise.all([k.copyFromAsync(src[0]!, stream), v.copyFromAsync(src[1]!, stream)]);
      } finally {
        for (const t of src) t.dispose();
      }
    },
  };
}
