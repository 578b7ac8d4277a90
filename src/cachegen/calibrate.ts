/**
 * Per-model calibration of a CacheGen level against a quality budget.
 *
 * The levels in levels.ts were chosen on stories260K, and another model's KV tolerates other steps:
 * on a random-initialised Mistral-7B, V errors dominate the output and V needs steps several times
 * finer for the same KL (session 4's quality bench). So a level is calibrated per model: its K and V
 * step fractions are scaled by (kScale, vScale) from geometric grids, each candidate encodes
 * calibration spans, decodes them, and runs a continuation through the model on the decoded KV; the
 * cheapest candidate (bits per value) whose mean continuation KL stays within the budget wins.
 * For each kScale the V grid is walked from coarse to fine and stops at the first candidate within
 * the budget (KL falls as V's steps shrink). Then each layer third's V and K steps are coarsened on
 * their own (x1.41 at a time) while the budget holds: a model's layers need not share the base
 * level's shape (on a 12-layer random Mistral-like model the first third's V needed 8x finer steps
 * than the others, and refining cut the calibrated level from 4.55 to 3.37 bits per value at the
 * same KL). A search costs a few dozen encode/decode/continuation rounds. Calibrate on spans other
 * than those you evaluate on.
 */
import type { Model } from '../model/model.js';
import { modelFingerprint } from '../model/fingerprint.js';
import { ArgumentError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import { continuationLogits } from '../eval/kv-continuation.js';
import { continuationQuality } from '../eval/quality.js';
import type { KVCodec } from './codec.js';
import { cachegenCodecFor } from './registry.js';
import { type CachegenLevel } from './levels.js';
import { containerStats } from './stats.js';

/** A KV span to calibrate on and the tokens that follow it. */
export interface CalibrationSpan {
  /** [nLayers, 2, n, nKvHeads, headDim], f16, computed by the model being calibrated. */
  readonly kv: Tensor;
  readonly positions: Int32Array;
  /** At least two tokens: the continuation whose logits are compared. */
  readonly continuation: readonly number[];
}

/** Step multipliers per layer third, relative to the base level. */
export type ThirdScales = readonly [number, number, number];

export interface CalibrationPoint {
  readonly kScale: ThirdScales;
  readonly vScale: ThirdScales;
  /** Mean continuation KL over the spans, vs their exact KV. */
  readonly kl: number;
  /** Stored bits per KV value over all spans (containers included). */
  readonly bitsPerValue: number;
}

export interface Calibration {
  readonly level: CachegenLevel;
  readonly point: CalibrationPoint;
  readonly budget: number;
  /** Every candidate evaluated, in order. */
  readonly tried: readonly CalibrationPoint[];
}

export interface CalibrateOptions {
  /** The level whose fractions are scaled (the default level). */
  base: CachegenLevel;
  /** Mean continuation KL (nats) the calibrated level may cost. */
  budget: number;
  /** The calibrated level's name (default `${base.name}-calibrated`). */
  name?: string;
  kScales?: readonly number[];
  /** Coarse to fine. */
  vScales?: readonly number[];
  /** Coarsen each layer third on its own after the grid search (default true). */
  refine?: boolean;
  onProgress?: (message: string) => void;
}

const REFINE_STEP = 1.41;

export const K_SCALES: readonly number[] = [2, 1.41, 1, 0.71, 0.5, 0.35, 0.25];
export const V_SCALES: readonly number[] = [1, 0.71, 0.5, 0.35, 0.25, 0.18, 0.125, 0.088, 0.0625];

/**
 * `base` with its K and V step fractions multiplied by kScale and vScale (one factor, or one per
 * layer third). A layer third whose step was made finer than 1/m of the range gets m = 31, so that
 * step is not raised back to range / m.
 */
export function scaledLevel(base: CachegenLevel, kScale: number | ThirdScales, vScale: number | ThirdScales,
  name = `${base.name}-k${String(kScale)}-v${String(vScale)}`): CachegenLevel {
  const ks = thirds(kScale), vs = thirds(vScale);
  if (![...ks, ...vs].every((x) => x > 0)) throw new ArgumentError(`step scales must be positive, got k ${String(kScale)}, v ${String(vScale)}`);
  const times = (xs: readonly number[], f: ThirdScales) => xs.map((x, g) => x * f[g]!) as unknown as [number, number, number];
  const k = { anchor: times(base.k.anchor, ks), delta: times(base.k.delta, ks) };
  const v = { anchor: times(base.v.anchor, vs), delta: times(base.v.delta, vs) };
  // A third whose step was made finer and now sits below 1/m of the range gets m = 31 (scale 1
  // leaves the base level as it is).
  const m = (g: number, levels: readonly number[], pairs: [readonly number[], readonly number[]][]) =>
    pairs.some(([was, now]) => now[g]! < was[g]! && now[g]! < 1 / levels[g]!) ? 31 : levels[g]!;
  const anchors: [readonly number[], readonly number[]][] = [[base.k.anchor, k.anchor], [base.v.anchor, v.anchor]];
  const deltas: [readonly number[], readonly number[]][] = [[base.k.delta, k.delta], [base.v.delta, v.delta]];
  return {
    name, group: base.group,
    anchor: [0, 1, 2].map((g) => m(g, base.anchor, anchors)) as unknown as [number, number, number],
    delta: [0, 1, 2].map((g) => m(g, base.delta, deltas)) as unknown as [number, number, number],
    k, v,
  };
}

function thirds(s: number | ThirdScales): ThirdScales {
  return typeof s === 'number' ? [s, s, s] : s;
}

/**
 * One span through `codec` at `level` and back onto the model's device, then the continuation on the
 * decoded KV: its mean KL against `reference` (the continuation's logits on the exact KV) and the
 * container.
 */
export function codecKL(model: Model, span: CalibrationSpan & { reference: Float32Array }, codec: KVCodec, level: string):
  { kl: number; bytes: Uint8Array } {
  const bytes = codec.encode({ kv: span.kv, positions: span.positions, fingerprint: modelFingerprint(model.config) }, { level });
  const decoded = codec.decode(bytes, { device: model.device, dtype: model.dtype }).kv;
  try {
    const logits = continuationLogits(model, decoded, span.positions, span.continuation);
    return { kl: continuationQuality(span.reference, logits, model.config.vocabSize, span.continuation.slice(1)).kl, bytes };
  } finally {
    decoded.dispose();
  }
}

/** Mean continuation KL and bits per value of one level over prepared spans. */
function evaluate(model: Model, spans: readonly (CalibrationSpan & { reference: Float32Array })[], level: CachegenLevel): { kl: number; bitsPerValue: number } {
  const codec = cachegenCodecFor(level);
  let kl = 0, bits = 0, values = 0;
  for (const s of spans) {
    const r = codecKL(model, s, codec, level.name);
    kl += r.kl;
    bits += containerStats(r.bytes).bitsPerValue * s.kv.numel;
    values += s.kv.numel;
  }
  return { kl: kl / spans.length, bitsPerValue: bits / values };
}

/** The cheapest scaled `o.base` whose mean continuation KL on `spans` is within `o.budget` (module comment). */
export function calibrateLevel(model: Model, spans: readonly CalibrationSpan[], o: CalibrateOptions): Calibration {
  if (spans.length === 0) throw new ArgumentError('calibration needs at least one span');
  if (!(o.budget > 0)) throw new ArgumentError(`the KL budget must be positive, got ${o.budget}`);
  for (const s of spans)
    if (s.continuation.length < 2) throw new ArgumentError('each calibration span needs a continuation of at least 2 tokens');
  const prepared = spans.map((s) => ({ ...s, reference: continuationLogits(model, s.kv, s.positions, s.continuation) }));
  const tried: CalibrationPoint[] = [];
  const at = (kScale: ThirdScales, vScale: ThirdScales): CalibrationPoint => {
    const p = { kScale, vScale, ...evaluate(model, prepared, scaledLevel(o.base, kScale, vScale)) };
    tried.push(p);
    o.onProgress?.(`calibrate: k x${kScale.join('/')} v x${vScale.join('/')}: KL ${p.kl.toExponential(2)}, ${p.bitsPerValue.toFixed(3)} bits`);
    return p;
  };
  let best: CalibrationPoint | null = null;
  for (const kScale of o.kScales ?? K_SCALES) {
    for (const vScale of o.vScales ?? V_SCALES) {
      const p = at(thirds(kScale), thirds(vScale));
      if (p.kl <= o.budget) {
        if (!best || p.bitsPerValue < best.bitsPerValue) best = p;
        break;
      }
    }
  }
  if (!best) {
    const finest = tried.reduce((a, b) => (b.kl < a.kl ? b : a));
    throw new ArgumentError(`no scaled ${o.base.name} level reaches KL ${o.budget.toExponential(2)} (the finest tried: ${finest.kl.toExponential(2)})`);
  }
  if (o.refine !== false) best = refine(best, o.budget, at);
  return { level: scaledLevel(o.base, best.kScale, best.vScale, o.name ?? `${o.base.name}-calibrated`), point: best, budget: o.budget, tried };
}

/** Coarsens one layer third's V or K steps at a time (x1.41) while the budget holds and bits fall; two rounds. */
function refine(start: CalibrationPoint, budget: number, at: (k: ThirdScales, v: ThirdScales) => CalibrationPoint): CalibrationPoint {
  let best = start;
  for (let round = 0; round < 2; round++)
    for (const plane of ['vScale', 'kScale'] as const)
      for (let g = 0; g < 3; g++)
        for (;;) {
          const scaled = best[plane].map((x, i) => (i === g ? Number((x * REFINE_STEP).toPrecision(4)) : x)) as unknown as ThirdScales;
          const p = plane === 'vScale' ? at(best.kScale, scaled) : at(scaled, best.vScale);
          if (!(p.kl <= budget && p.bitsPerValue < best.bitsPerValue)) break;
          best = p;
        }
  return best;
}
