/**
 * Instrumentation for CacheBlend's observation plots and quality rows.
 *
 * - reuseDeviation: per layer, per context token, the KV deviation of full reuse (re-positioned
 *   chunk KV) against full prefill: sum over kv heads and head_dim of the squared difference of K,
 *   of V, and both added (the paper's Fig. 7 CDF).
 * - attentionDeviation: how far the query's view of the context is from full prefill's. Defined
 *   here as the relative L2 (Frobenius) error of the query tokens' residual stream after the last
 *   layer (the input of the final norm): ||H_method - H_full||_F / ||H_full||_F over all query rows.
 *   It is what every layer's attention of the query delivers to the head, end to end; the paper
 *   measures the attention output of one layer, which the engine's fused layer does not expose.
 * - spearman / neighbourSpearman: rank correlation of per-token deviation between layers l and
 *   l + 1 (Fig. 8), average ranks for ties.
 * - meanKL: DESIGN.md's quality KL, mean over rows of KL(P_exact || P_method), in nats.
 */
import type { Model } from '../model/model.js';
import { ArgumentError, ShapeError } from '../runtime/errors.js';
import type { ChunkKV } from './chunk.js';
import { buildReusedCache, fusedLayout, trueDeviation, type FuseResult } from './fusor.js';

export interface ReuseDeviation {
  /** [layer] -> Float64Array [N context tokens] */
  k: Float64Array[];
  v: Float64Array[];
  kv: Float64Array[];
}

/** Per-layer per-token KV deviation of full reuse vs full prefill for prefix + chunks. */
export function reuseDeviation(model: Model, prefix: ArrayLike<number>, chunks: readonly ChunkKV[]): ReuseDeviation {
  const lay = fusedLayout(model, prefix, chunks, 0);
  const cache = buildReusedCache(model, prefix, chunks, lay, 0);
  try {
    const k = trueDeviation(model, cache, lay, 'k');
    const v = trueDeviation(model, cache, lay, 'v');
    return { k, v, kv: k.map((a, l) => a.map((x, i) => x + v[l]![i]!)) };
  } finally {
    cache.dispose();
  }
}

/** Relative L2 of the query's final hidden states; both results need `keepHidden: true`. */
export function attentionDeviation(method: FuseResult, full: FuseResult): number {
  const a = method.queryHidden, b = full.queryHidden;
  if (!a || !b) throw new ArgumentError('attentionDeviation needs fuse results made with keepHidden: true');
  if (a.length !== b.length) throw new ShapeError(`query hidden states differ in size: ${a.length} vs ${b.length}`);
  let d = 0, r = 0;
  for (let i = 0; i < a.length; i++) { d += (a[i]! - b[i]!) ** 2; r += b[i]! ** 2; }
  return r === 0 ? Math.sqrt(d) : Math.sqrt(d / r);
}

/** Spearman rank correlation (Pearson on average ranks). NaN when either side is constant. */
export function spearman(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new ShapeError(`spearman: ${a.length} vs ${b.length} values`);
  const ra = ranks(a), rb = ranks(b);
  const n = a.length;
  const ma = ra.reduce((s, x) => s + x, 0) / n, mb = rb.reduce((s, x) => s + x, 0) / n;
  let sab = 0, saa = 0, sbb = 0;
  for (let i = 0; i < n; i++) {
    const x = ra[i]! - ma, y = rb[i]! - mb;
    sab += x * y; saa += x * x; sbb += y * y;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Spearman correlation of per-token deviation between each pair of neighbouring layers. */
export function neighbourSpearman(perLayer: readonly ArrayLike<number>[]): number[] {
  return perLayer.slice(1).map((d, i) => spearman(perLayer[i]!, d));
}

/** Mean over rows of KL(P_exact || P_method) from f32 logits [rows, vocab], in nats. */
export function meanKL(exactLogits: ArrayLike<number>, methodLogits: ArrayLike<number>, vocab: number): number {
  if (exactLogits.length !== methodLogits.length || exactLogits.length % vocab !== 0 || exactLogits.length === 0)
    throw new ShapeError(`meanKL: logits of ${exactLogits.length} and ${methodLogits.length} values are not matching [rows, ${vocab}]`);
  const rows = exactLogits.length / vocab;
  let total = 0;
  for (let r = 0; r < rows; r++) {
    const p = logSoftmax(exactLogits, r * vocab, vocab), q = logSoftmax(methodLogits, r * vocab, vocab);
    let kl = 0;
    for (let i = 0; i < vocab; i++) kl += Math.exp(p[i]!) * (p[i]! - q[i]!);
    total += Math.max(kl, 0);
  }
  return total / rows;
}

function logSoftmax(x: ArrayLike<number>, off: number, n: number): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, x[off + i]!);
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(x[off + i]! - m);
  const lse = m + Math.log(s);
  return Float64Array.from({ length: n }, (_, i) => x[off + i]! - lse);
}

function ranks(x: ArrayLike<number>): Float64Array {
  const n = x.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => x[i]! - x[j]!);
  const r = new Float64Array(n);
  for (let i = 0; i < n;) {
    let j = i;
    while (j + 1 < n && x[order[j + 1]!] === x[order[i]!]) j++;
    const avg = (i + j) / 2 + 1;
    for (let k = i; k <= j; k++) r[order[k]!] = avg;
    i = j + 1;
  }
  return r;
}
