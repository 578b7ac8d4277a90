/**
 * CacheGen's three observations (ALGORITHMS.md) measured on a model's own KV, as tidy rows for the
 * observation plots. `cachegenObservations(model, contexts)` returns four tables:
 *
 * distribution   (a) values of K and V per layer, raw vs delta against the group anchor (groups
 *                of `groupSize` tokens, the first token of each group its anchor; anchors themselves
 *                are left out of both series so both cover the same tokens). One row per histogram
 *                bin: {layer, kv: 'K'|'V', series: 'raw'|'delta', binLo, binHi, density} where density
 *                is the share of values in the bin / bin width (the bins of a (layer, kv) are shared
 *                by both series: 40 bins over +- the 99.5th percentile of |raw|).
 * deltaVariance  (a) one row per (layer, kv): {layer, kv, rawVariance, deltaVariance, varianceRatio
 *                (raw / delta, pooled over channels), channelVarianceRatio (mean within-channel
 *                variance, raw / delta)}. The paper reports 2.4-2.9x lower variance for deltas.
 * sensitivity    (b) one row per (layer group, bits): the context KV of one third of the layers
 *                (group g holds layers l with floor(3 l / L) = g) quantized coarsely (symmetric,
 *                per token and K|V, 2^(bits-1) - 1 levels each side), the rest exact, the continuation
 *                scored against exact KV: {group, layers: 'a-b', bits, kl, pplDeltaPct, top1}.
 * entropy        (c) one row per (series, grouping): empirical entropy in bits per value of the
 *                quantized values (symbol = round(x / step), step = max |x| of the (layer, kv,
 *                series) / 16, i.e. 33 levels) when one probability model is kept per (layer, K|V,
 *                channel), per token position, or one for everything: {series, grouping:
 *                'layer-channel'|'token'|'global', bitsPerValue, groups, values}. Conditional
 *                entropies H(S | group), counts pooled over contexts.
 */
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import type { CodecContext } from './codec-contexts.js';
import { continuationLogits, contextSpan } from './kv-continuation.js';
import { continuationQuality } from './quality.js';

export interface DistributionRow { layer: number; kv: 'K' | 'V'; series: 'raw' | 'delta'; binLo: number; binHi: number; density: number }
export interface DeltaVarianceRow { layer: number; kv: 'K' | 'V'; rawVariance: number; deltaVariance: number; varianceRatio: number; channelVarianceRatio: number }
export interface SensitivityRow { group: number; layers: string; bits: number; kl: number; pplDeltaPct: number; top1: number }
export interface EntropyRow { series: 'raw' | 'delta'; grouping: 'layer-channel' | 'token' | 'global'; bitsPerValue: number; groups: number; values: number }

export interface Observations {
  distribution: DistributionRow[];
  deltaVariance: DeltaVarianceRow[];
  sensitivity: SensitivityRow[];
  entropy: EntropyRow[];
}

export interface ObservationOptions {
  /** Tokens per anchor group (CacheGen's default 10). */
  groupSize?: number;
  /** Bit widths of the coarse quantization in (b) (default [3, 4, 6]; 2 bits rounds most values to 0, which on stories260K hurts less than 3 bits). */
  bits?: readonly number[];
  bins?: number;
  onProgress?: (done: number, total: number) => void;
}

const KVS = ['K', 'V'] as const;

/** Layer group of layer l among L: thirds, floor(3 l / L). */
export function layerThird(l: number, L: number): number {
  return Math.floor((3 * l) / L);
}

/** Symmetric per-row quantization in place: rows of `width` values, `levels` levels each side. */
function quantizeRows(x: Float32Array, start: number, end: number, width: number, levels: number): void {
  for (let r = start; r < end; r += width) {
    let m = 0;
    for (let j = 0; j < width; j++) m = Math.max(m, Math.abs(x[r + j]!));
    if (m === 0) continue;
    const s = m / levels;
    for (let j = 0; j < width; j++) x[r + j] = Math.round(x[r + j]! / s) * s;
  }
}

function entropyBits(counts: Map<number, number>, total: number): number {
  let h = 0;
  for (const c of counts.values()) { const p = c / total; h -= p * Math.log2(p); }
  return h;
}

export function cachegenObservations(model: Model, contexts: readonly CodecContext[], o: ObservationOptions = {}): Observations {
  const G = o.groupSize ?? 10;
  const bitsList = o.bits ?? [3, 4, 6];
  const nBins = o.bins ?? 40;
  if (!Number.isInteger(G) || G < 2) throw new ArgumentError(`groupSize must be an integer >= 2, got ${G}`);
  for (const b of bitsList) if (!Number.isInteger(b) || b < 2 || b > 16) throw new ArgumentError(`bits must be integers in [2, 16], got ${b}`);
  if (contexts.length === 0) throw new ArgumentError('cachegenObservations needs at least one context');
  const { nLayers: L, nKvHeads, headDim } = model.kvLayout;
  const C = nKvHeads * headDim;
  const V = model.config.vocabSize;
  // Per (layer, kv): raw and delta values of non-anchor tokens, channel-major sums for variances.
  const raw: number[][] = Array.from({ length: 2 * L }, () => []);
  const delta: number[][] = Array.from({ length: 2 * L }, () => []);
  const chan = Array.from({ length: 2 * L }, () => ({ rs: new Float64Array(C), rq: new Float64Array(C), ds: new Float64Array(C), dq: new Float64Array(C), n: 0 }));
  const byToken: { ctx: number; x: Float32Array; n: number }[] = [];
  const sens = new Map<string, { kl: number; nllE: number; nllM: number; top1: number; rows: number; targets: number }>();
  contexts.forEach((ctx, ci) => {
    const span = contextSpan(model, ctx.context);
    try {
      const n = ctx.context.length;
      const x = span.kv.toFloat32();
      byToken.push({ ctx: ci, x, n });
      for (let l = 0; l < L; l++) for (let k = 0; k < 2; k++) {
        const base = (l * 2 + k) * n * C, i = l * 2 + k, ch = chan[i]!;
        for (let t = 0; t < n; t++) {
          const a = t - (t % G);
          if (a === t) continue;
          ch.n++;
          for (let c = 0; c < C; c++) {
            const r = x[base + t * C + c]!, d = r - x[base + a * C + c]!;
            raw[i]!.push(r); delta[i]!.push(d);
            ch.rs[c]! += r; ch.rq[c]! += r * r; ch.ds[c]! += d; ch.dq[c]! += d * d;
          }
        }
      }
      const exact = continuationLogits(model, span.kv, span.positions, ctx.continuation);
      const targets = ctx.continuation.slice(1);
      for (let g = 0; g < 3; g++) {
        const layers = Array.from({ length: L }, (_, l) => l).filter((l) => layerThird(l, L) === g);
        if (layers.length === 0) continue;
        for (const bits of bitsList) {
          const q = x.slice();
          for (const l of layers) quantizeRows(q, l * 2 * n * C, (l * 2 + 2) * n * C, C, 2 ** (bits - 1) - 1);
          const t = Tensor.fromTypedArray(q, span.kv.shape, { device: model.device });
          const kvq = t.dtype === model.dtype ? t : t.cast(model.dtype);
          try {
            const logits = continuationLogits(model, kvq, span.positions, ctx.continuation);
            const s = continuationQuality(exact, logits, V, targets);
            const key = `${g}/${bits}`;
            const a = sens.get(key) ?? { kl: 0, nllE: 0, nllM: 0, top1: 0, rows: 0, targets: 0 };
            const rows = ctx.continuation.length;
            a.kl += s.kl * rows; a.top1 += s.top1 * rows; a.rows += rows;
            a.nllE += Math.log(s.pplExact) * targets.length; a.nllM += Math.log(s.pplMethod) * targets.length; a.targets += targets.length;
            sens.set(key, a);
          } finally {
            if (kvq !== t) kvq.dispose();
            t.dispose();
          }
        }
      }
    } finally {
      span.kv.dispose();
    }
    o.onProgress?.(ci + 1, contexts.length);
  });

  const distribution: DistributionRow[] = [];
  const deltaVariance: DeltaVarianceRow[] = [];
  const variance = (v: number[]) => { const m = v.reduce((a, b) => a + b, 0) / v.length; return v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length; };
  for (let l = 0; l < L; l++) for (let k = 0; k < 2; k++) {
    const i = l * 2 + k, r = raw[i]!, d = delta[i]!, ch = chan[i]!;
    const absSorted = Float64Array.from(r, Math.abs).sort();
    const lim = absSorted[Math.min(absSorted.length - 1, Math.floor(0.995 * absSorted.length))]! || 1;
    const w = (2 * lim) / nBins;
    for (const [series, vals] of [['raw', r], ['delta', d]] as const) {
      const counts = new Float64Array(nBins);
      for (const v of vals) { const b = Math.floor((v + lim) / w); if (b >= 0 && b < nBins) counts[b]!++; }
      for (let b = 0; b < nBins; b++)
        distribution.push({ layer: l, kv: KVS[k]!, series, binLo: -lim + b * w, binHi: -lim + (b + 1) * w, density: counts[b]! / vals.length / w });
    }
    let rv = 0, dv = 0;
    for (let c = 0; c < C; c++) {
      rv += ch.rq[c]! / ch.n - (ch.rs[c]! / ch.n) ** 2;
      dv += ch.dq[c]! / ch.n - (ch.ds[c]! / ch.n) ** 2;
    }
    const rawVariance = variance(r), deltaVariance_ = variance(d);
    deltaVariance.push({ layer: l, kv: KVS[k]!, rawVariance, deltaVariance: deltaVariance_, varianceRatio: rawVariance / deltaVariance_, channelVarianceRatio: rv / dv });
  }

  const sensitivity: SensitivityRow[] = [];
  for (let g = 0; g < 3; g++) {
    const layers = Array.from({ length: L }, (_, l) => l).filter((l) => layerThird(l, L) === g);
    for (const bits of bitsList) {
      const a = sens.get(`${g}/${bits}`);
      if (!a) continue;
      sensitivity.push({ group: g, layers: `${layers[0]}-${layers[layers.length - 1]}`, bits, kl: a.kl / a.rows,
        pplDeltaPct: (Math.exp((a.nllM - a.nllE) / a.targets) - 1) * 100, top1: a.top1 / a.rows });
    }
  }

  // (c): symbols per series with one step per (layer, kv, series); counts per grouping.
  const entropy: EntropyRow[] = [];
  for (const series of ['raw', 'delta'] as const) {
    const steps = Array.from({ length: 2 * L }, (_, i) => {
      let m = 0;
      for (const v of (series === 'raw' ? raw : delta)[i]!) m = Math.max(m, Math.abs(v));
      return m / 16 || 1;
    });
    const global = new Map<number, number>();
    const perLC = new Map<number, Map<number, number>>();
    const perTok = new Map<number, Map<number, number>>();
    let total = 0;
    const bump = (m: Map<number, Map<number, number>>, g: number, s: number) => {
      let h = m.get(g);
      if (!h) { h = new Map(); m.set(g, h); }
      h.set(s, (h.get(s) ?? 0) + 1);
    };
    for (const { x, n } of byToken) {
      for (let l = 0; l < L; l++) for (let k = 0; k < 2; k++) {
        const i = l * 2 + k, base = i * n * C, step = steps[i]!;
        for (let t = 0; t < n; t++) {
          const a = t - (t % G);
          if (a === t) continue;
          for (let c = 0; c < C; c++) {
            const v = series === 'raw' ? x[base + t * C + c]! : x[base + t * C + c]! - x[base + a * C + c]!;
            const s = Math.round(v / step);
            global.set(s, (global.get(s) ?? 0) + 1);
            bump(perLC, i * C + c, s);
            bump(perTok, t, s);
            total++;
          }
        }
      }
    }
    const cond = (m: Map<number, Map<number, number>>) => {
      let h = 0;
      for (const g of m.values()) { let n = 0; for (const c of g.values()) n += c; h += (n / total) * entropyBits(g, n); }
      return h;
    };
    entropy.push({ series, grouping: 'layer-channel', bitsPerValue: cond(perLC), groups: perLC.size, values: total });
    entropy.push({ series, grouping: 'token', bitsPerValue: cond(perTok), groups: perTok.size, values: total });
    entropy.push({ series, grouping: 'global', bitsPerValue: entropyBits(global, total), groups: 1, values: total });
  }
  return { distribution, deltaVariance, sensitivity, entropy };
}
