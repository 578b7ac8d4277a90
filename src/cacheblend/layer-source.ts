/**
 * LayerSource: per-layer KV of a chunk arriving asynchronously (from a storage tier, over a
 * network, or already in memory). CacheBlend consumes this interface; the store implements it; tests
 * fake it. Layer l yields a tensor [2, n, kvHeads, headDim] (K then V) in the design's layout.
 */
import type { Tensor } from '../runtime/tensor.js';
import type { ChunkKV } from './chunk.js';

export interface LayerSource {
  readonly layers: number;
  /** Resolves with layer l's K and V ([2, n, kvHeads, headDim]); the caller disposes the tensor. */
  load(layer: number): Promise<Tensor>;
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
