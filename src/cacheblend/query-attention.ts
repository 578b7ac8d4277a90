/**
 * The question's attention over the reused context: what the `query-attention` policy ranks by.
 *
 * The question is known when the request arrives, so before any context token is recomputed the
 * query rows alone run through the first layers on the full-reuse cache (prefix exact, chunks
 * re-positioned): on each layer l the query's attention queries q = Model.queryVectors(l, x) and the
 * cache's post-RoPE keys give, per query token and query head, the softmax over every visible slot
 * (position <= the query token's, scale 1/sqrt(head_dim), GQA: head h reads kv head
 * h / (nHeads / nKvHeads)), exactly the probabilities the layer's attention uses. A context token's
 * mass on layer l = the sum of its probability over the query tokens and heads. Then the layer runs on
 * the query rows (Model.layer) to give the next layer its inputs; the query's slots are dropped again
 * afterwards (the cache is truncated back to prefix + context), so the fusor proper appends them anew.
 *
 * Cost: Q query rows x `layers` layers of the ordinary layer (plus the host softmax over the P + N + Q
 * slots): with Q << N a small share of the N x L token-layers of a full prefill; the fusor adds it to
 * the compute fraction (fusor.ts).
 *
 * The scores are computed on the host from the cache's keys (a copy per layer): fine for kvlab's QA
 * model on the CPU; a GPU serving path would want a kernel that returns the per-key mass.
 */
import type { KVCache } from '../model/kv-cache.js';
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';

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
  const x = model.embed(query);
  const batch = model.batch(positions, slots);
  const H = c.nHeads, G = c.nKvHeads, d = c.headDim, group = H / G, scale = 1 / Math.sqrt(d);
  const out: Float64Array[] = [];
  try {
    for (let l = 0; l < layers; l++) {
      if (l < from) {
        model.layer(l, x, batch, cache);
        continue;
      }
      const qT = model.queryVectors(l, x, batch);
      let q: Float32Array;
      try {
        q = qT.toFloat32();
      } finally {
        qT.dispose();
      }
      // The layer writes the query's own K/V (the query attends to itself too), then advances x.
      model.layer(l, x, batch, cache);
      const S = cache.length;
      const kAll = cache.slab(l, 0).rows(0, S);
      let k: Float32Array;
      try {
        k = kAll.toFloat32();
      } finally {
        kAll.dispose();
      }
      out.push(massOf(q, k, cache.positions.subarray(0, S), positions, P, N, H, group, d, scale));
    }
    return out;
  } finally {
    x.dispose();
    batch.dispose();
    cache.truncate(P + N);
  }
}

/** Softmax probabilities of q [Q, H, d] over keys k [S, G, d] (visible: kpos <= qpos), summed into the N context slots P..P+N-1. */
function massOf(q: Float32Array, k: Float32Array, kpos: Int32Array, qpos: Int32Array, P: number, N: number, H: number, group: number,
  d: number, scale: number): Float64Array {
  const S = kpos.length, G = H / group;
  const mass = new Float64Array(N);
  const logit = new Float64Array(S);
  for (let i = 0; i < qpos.length; i++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group), qo = (i * H + h) * d;
      let max = -Infinity;
      for (let s = 0; s < S; s++) {
        if (kpos[s]! > qpos[i]!) { logit[s] = -Infinity; continue; }
        const ko = (s * G + g) * d;
        let dot = 0;
        for (let e = 0; e < d; e++) dot += q[qo + e]! * k[ko + e]!;
        logit[s] = dot * scale;
        if (logit[s]! > max) max = logit[s]!;
      }
      let z = 0;
      for (let s = 0; s < S; s++) z += logit[s] === -Infinity ? 0 : Math.exp(logit[s]! - max);
      for (let t = 0; t < N; t++) {
        const s = P + t;
        if (logit[s] !== -Infinity) mass[t]! += Math.exp(logit[s]! - max) / z;
      }
    }
  }
  return mass;
}
