/**
 * The question's attention over the reused context: what the `query-attention` policy ranks by.
 *
 * The question is known when the request arrives, so before any context token is recomputed the
 * query rows alone run through the first layers on the full-reuse cache (prefix exact, chunks
 * re-positioned): on each layer l the query's attention queries q = Model.queryVectors(l, x) and the
 * cache's post-RoPE keys give, per query token and query head, the softmax over every visible slot
 * (position <= the query token's, scale 1/sqrt(head_dim), GQA: head h reads kv head
 * h / (nHeads / nKvHeads)), exactly the probabilities the layer's attention uses. A context token's
 * mass on layer l = the sum of its probability over the query tokens and heads (ops.attentionMass).
 * Then the layer runs on the query rows (Model.layer) to give the next layer its inputs; the query's
 * slots are dropped again afterwards (the cache is truncated back to prefix + context), so the fusor
 * proper appends them anew.
 *
 * Cost: Q query rows x `layers` layers of the ordinary layer, plus on each scored layer one
 * ops.attentionMass over the P + N + Q slots (about 2 Q x nHeads x (P + N + Q) x head_dim
 * multiply-adds, a small share of the layer's own attention over the context): with Q << N a small
 * share of the N x L token-layers of a full prefill; the fusor adds it to the compute fraction
 * (fusor.ts). Everything stays on the model's device (CPU or CUDA): per scored layer only the f32
 * masses of the P + N + Q slots come back to the host.
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';

/**
 * Per layer from..layers-1: each context token's attention mass from the query (Float64Array [N]);
 * layers before `from` only carry the query rows forward (no scores). `cache` holds the prefix's P slots then the N context slots at positions P..P+N-1, with room for
 * Q more; it is left with the same P + N slots (the query's K/V it wrote beyond them are forgotten).
 */
export function queryAttentionMass(model: Model, cache: KVCache, P: number, N: number, query: Int32Array, layers: number,
  from = 0): Float64Array[] {
  const c = model.config;
  if (!Number.isInteger(layers) || layers < 1 || layers > c.nLayers)
    throw new ArgumentError(`query attention: layers must be an integer in [1, ${c.nLayers}], got ${layers}`);
  if (!Number.isInteger(from) || from < 0 || from >= layers)
    throw new ArgumentError(`query attention: from must be an integer in [0, ${layers}), got ${from}`);
  if (cache.length !== P + N) throw new ArgumentError(`query attention: the cache holds ${cache.length} slots, expected prefix + context = ${P + N}`);
  const Q = query.length;
  const positions = Int32Array.from({ length: Q }, (_, i) => P + N + i);
  const slots = cache.append(positions);
  const S = cache.length;
  const x = model.embed(query);
  const batch = model.batch(positions, slots);
  const shape = { heads: c.nHeads, kvHeads: c.nKvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim) };
  let kpos: Tensor | undefined, mass: Tensor | undefined;
  const out: Float64Array[] = [];
  try {
    kpos = cache.positionsTensor.rows(0, S);
    mass = Tensor.empty([S], { dtype: 'f32', device: model.device });
    for (let l = 0; l < layers; l++) {
      if (l < from) {
        model.layer(l, x, batch, cache);
        continue;
      }
      const q = model.queryVectors(l, x, batch);
      try {
        // The layer writes the query's own K/V (the query attends to itself too), then advances x.
        model.layer(l, x, batch, cache);
        const k = cache.slab(l, 0).rows(0, S);
        try {
          ops.attentionMass(q, k, batch.positionsTensor, kpos, mass, shape);
        } finally {
          k.dispose();
        }
      } finally {
        q.dispose();
      }
      out.push(Float64Array.from(mass.toFloat32().subarray(P, P + N)));
    }
    return out;
  } finally {
    mass?.dispose();
    kpos?.dispose();
    x.dispose();
    batch.dispose();
    cache.truncate(P + N);
  }
}
