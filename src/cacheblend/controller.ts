/**
 * CacheBlend's loading controller. Loading layer i+1's KV overlaps recomputing layer i, so a ratio is
 * free as long as recomputing a layer takes at least as long as loading one:
 *   recompute time per layer  t(r) = fixed + perToken * r * N   (profiled: a line through measured points)
 *   load time per layer       L = bytes per layer / tier bandwidth + tier latency
 *   ratio = max(r*, r_hide) with r_hide the smallest r where t(r) >= L (clamped to [0, 1]);
 *   tier  = the cheapest tier whose L <= t(r) for the ratio asked (the fastest one if none hides it).
 */
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import { medianTimeMs } from '../runtime/timing.js';

export interface RecomputeProfile {
  /** Seconds per layer spent whatever the ratio (the query tokens, launches). */
  fixedS: number;
  /** Seconds per layer per recomputed context token. */
  perTokenS: number;
}

export interface StorageTier {
  name: string;
  /** Bytes per second the tier delivers. */
  bandwidth: number;
  /** Seconds of latency per layer request. */
  latencyS: number;
  /** Relative cost of keeping a byte there (lower is cheaper). */
  costPerByte: number;
}

/** Least-squares line through (tokens, seconds per layer) measurements. */
export function fitRecomputeProfile(points: readonly { tokens: number; seconds: number }[]): RecomputeProfile {
  if (points.length < 2) throw new ArgumentError('fitRecomputeProfile needs at least two measurements');
  const n = points.length;
  const mx = points.reduce((a, p) => a + p.tokens, 0) / n;
  const my = points.reduce((a, p) => a + p.seconds, 0) / n;
  let sxy = 0, sxx = 0;
  for (const p of points) { sxy += (p.tokens - mx) * (p.seconds - my); sxx += (p.tokens - mx) ** 2; }
  if (sxx === 0) throw new ArgumentError('fitRecomputeProfile needs measurements at different token counts');
  const perTokenS = Math.max(sxy / sxx, 0);
  return { fixedS: Math.max(my - perTokenS * mx, 0), perTokenS };
}

export function recomputeSeconds(p: RecomputeProfile, ratio: number, contextTokens: number): number {
  return p.fixedS + p.perTokenS * ratio * contextTokens;
}

export function loadSeconds(tier: StorageTier, bytesPerLayer: number): number {
  return bytesPerLayer / tier.bandwidth + tier.latencyS;
}

/** The smallest ratio whose recompute hides one layer's load from `tier` (1 when none does). */
export function hidingRatio(p: RecomputeProfile, tier: StorageTier, bytesPerLayer: number, contextTokens: number): number {
  const need = loadSeconds(tier, bytesPerLayer) - p.fixedS;
  if (need <= 0) return 0;
  if (p.perTokenS === 0 || contextTokens === 0) return 1;
  return Math.min(1, need / (p.perTokenS * contextTokens));
}

/** ratio = max(r*, the ratio that hides loading from `tier`). */
export function chooseRatio(target: number, p: RecomputeProfile, tier: StorageTier, bytesPerLayer: number, contextTokens: number): number {
  if (!(target >= 0 && target <= 1)) throw new ArgumentError(`target ratio must be in [0, 1], got ${target}`);
  return Math.max(target, hidingRatio(p, tier, bytesPerLayer, contextTokens));
}

/** The cheapest tier whose per-layer load hides behind recomputing at `ratio`; else the fastest. */
export function chooseTier(tiers: readonly StorageTier[], ratio: number, p: RecomputeProfile, bytesPerLayer: number,
  contextTokens: number): { tier: StorageTier; hidden: boolean } {
  if (tiers.length === 0) throw new ArgumentError('chooseTier needs at least one tier');
  const budget = recomputeSeconds(p, ratio, contextTokens);
  const hiding = tiers.filter((t) => loadSeconds(t, bytesPerLayer) <= budget).sort((a, b) => a.costPerByte - b.costPerByte);
  if (hiding[0]) return { tier: hiding[0], hidden: true };
  const fastest = [...tiers].sort((a, b) => loadSeconds(a, bytesPerLayer) - loadSeconds(b, bytesPerLayer))[0]!;
  return { tier: fastest, hidden: false };
}

/**
 * Measures one layer's recompute time on `model`'s device for a context of `contextTokens` plus a
 * query of `queryTokens`, recomputing 0, 1/4 and 1/2 of the context (median of `reps`), and fits the
 * profile. The first layer is used; every layer of a Llama-family model does the same work.
 */
export function profileRecompute(model: Model, o: { contextTokens: number; queryTokens: number; reps?: number }): RecomputeProfile {
  const { contextTokens: N, queryTokens: q } = o;
  const reps = o.reps ?? 5;
  const cache = model.newCache(N + q);
  const tokens = Array.from({ length: N + q }, (_, i) => (i * 7919 + 3) % model.config.vocabSize);
  model.prefill(tokens, { past: cache, logits: 'none' });
  const points: { tokens: number; seconds: number }[] = [];
  try {
    for (const share of [0, 0.25, 0.5]) {
      const m = Math.round(share * N);
      // the last m context tokens plus the query, as a selection would recompute them
      const slots = Array.from({ length: m + q }, (_, i) => N - m + i);
      const x = model.embed(slots.map((s) => tokens[s]!));
      const batch = model.batch(slots.map((s) => cache.positions[s]!), slots);
      const ms = medianTimeMs(() => model.layer(0, x, batch, cache), model.device, reps, 1);  // one warm-up run
      points.push({ tokens: m, seconds: ms / 1000 });
      batch.dispose();
      x.dispose();
    }
  } finally {
    cache.dispose();
  }
  return fitRecomputeProfile(points);
}
