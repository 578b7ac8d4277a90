/**
 * Summaries of repeated measurements (TTFT in ms, bytes per chunk) and the size figures of
 * DESIGN.md: bits per value = 8 x bytes / (K and V values), ratio vs fp16 = 16 / bits per value.
 */
import { ArgumentError } from '../runtime/errors.js';

export interface Summary { n: number; mean: number; median: number; p90: number; p99: number; min: number; max: number }

/** Linear-interpolated quantile (numpy's default) of sorted values, q in [0, 1]. */
export function quantileSorted(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) throw new ArgumentError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new ArgumentError(`quantile ${q} is outside [0, 1]`);
  const at = q * (sorted.length - 1), lo = Math.floor(at), hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/** n, mean, median, p90, p99, min, max of finite values. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new ArgumentError('summarize needs at least one value');
  for (const v of values) if (!Number.isFinite(v)) throw new ArgumentError(`summarize: ${v} is not a finite number`);
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, mean: s.reduce((a, b) => a + b, 0) / s.length, median: quantileSorted(s, 0.5),
    p90: quantileSorted(s, 0.9), p99: quantileSorted(s, 0.99), min: s[0]!, max: s[s.length - 1]! };
}

/** TTFT summary in milliseconds plus the share of requests over an SLO (when given). */
export function ttftSummary(ms: readonly number[], sloMs?: number): Summary & { sloViolation: number | null } {
  const s = summarize(ms);
  return { ...s, sloViolation: sloMs === undefined ? null : ms.filter((x) => x > sloMs).length / ms.length };
}

export interface SizeSummary { bytes: number; values: number; bitsPerValue: number; ratioVsFp16: number; ratioVsInt8: number }

/** Total stored bytes over the K and V values they encode. */
export function sizeSummary(bytes: readonly number[], values: readonly number[]): SizeSummary {
  if (bytes.length !== values.length || bytes.length === 0) throw new ArgumentError(`sizeSummary: ${bytes.length} byte counts for ${values.length} value counts`);
  const b = bytes.reduce((a, x) => a + x, 0), v = values.reduce((a, x) => a + x, 0);
  if (!(v > 0)) throw new ArgumentError('sizeSummary: no values');
  const bpv = (8 * b) / v;
  return { bytes: b, values: v, bitsPerValue: bpv, ratioVsFp16: 16 / bpv, ratioVsInt8: 8 / bpv };
}
