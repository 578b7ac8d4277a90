/**
 * Bandwidth traces for the streamer. Two shapes:
 *
 * - 'per-chunk': chunk i is sent at gbps[i], the last value repeating (the CacheGen artifact's
 *   experiment: each chunk's bandwidth drawn uniformly in 0.1-10 Gbps);
 * - 'timed': the bandwidth is a step function of time since the request started (constant, a step,
 *   or a trace file); the last segment lasts forever.
 *
 * The simulated network moves `bytes` in bytes * 8 / bandwidth seconds, integrated over the segments
 * a transfer spans.
 */
import { seededUniform } from '../model/generate.js';
import { ArgumentError, FormatError } from '../runtime/errors.js';

export interface TimedSegment {
  /** The segment ends at this time (seconds since the start); Infinity for the last. */
  readonly untilS: number;
  readonly gbps: number;
}

export type BandwidthTrace =
  | { readonly kind: 'per-chunk'; readonly name: string; readonly gbps: readonly number[] }
  | { readonly kind: 'timed'; readonly name: string; readonly segments: readonly TimedSegment[] };

function checkGbps(g: number, what: string): number {
  if (!(Number.isFinite(g) && g > 0)) throw new ArgumentError(`${what}: bandwidth must be a number > 0 Gbps but is ${g}`);
  return g;
}

export function constantTrace(gbps: number): BandwidthTrace {
  return { kind: 'timed', name: `constant-${gbps}`, segments: [{ untilS: Infinity, gbps: checkGbps(gbps, 'constant trace') }] };
}

/** `before` Gbps until `atS` seconds, then `after`. */
export function stepTrace(before: number, after: number, atS: number): BandwidthTrace {
  if (!(atS > 0)) throw new ArgumentError(`step trace: the step time must be > 0 s but is ${atS}`);
  return {
    kind: 'timed', name: `step-${before}-${after}-at-${atS}`,
    segments: [{ untilS: atS, gbps: checkGbps(before, 'step trace') }, { untilS: Infinity, gbps: checkGbps(after, 'step trace') }],
  };
}

/** `count` traces of `chunks` per-chunk bandwidths, uniform in [minGbps, maxGbps], seeded. */
export function uniformTraces(count: number, chunks: number, options: { seed?: number; minGbps?: number; maxGbps?: number } = {}): BandwidthTrace[] {
  const lo = options.minGbps ?? 0.1, hi = options.maxGbps ?? 10;
  if (!(lo > 0 && hi >= lo)) throw new ArgumentError(`uniform traces need 0 < min <= max Gbps; received ${lo}, ${hi}`);
  if (!(Number.isInteger(count) && count >= 1 && Number.isInteger(chunks) && chunks >= 1)) throw new ArgumentError('uniform traces need count and chunks >= 1');
  const u = seededUniform(options.seed ?? 1);
  return Array.from({ length: count }, (_, t) => ({
    kind: 'per-chunk' as const, name: `uniform-${options.seed ?? 1}-${t}`, gbps: Array.from({ length: chunks }, () => lo + (hi - lo) * u()),
  }));
}

/**
 * A trace file: JSON `{"gbps": [...]}` (per chunk) or `{"segments": [{"durationS": s, "gbps": g}, ...]}`
 * (timed), or text lines `<start seconds> <gbps>` (timed; '#' comments).
 */
export function parseTrace(text: string, name: string): BandwidthTrace {
  const t = text.trim();
  if (t.startsWith('{')) {
    let j: { gbps?: unknown; segments?: unknown };
    try { j = JSON.parse(t); } catch (e) { throw new FormatError(`${name}: ${(e as Error).message}`); }
    if (Array.isArray(j.gbps)) return { kind: 'per-chunk', name, gbps: j.gbps.map((g, i) => checkGbps(Number(g), `${name} chunk ${i}`)) };
    if (Array.isArray(j.segments) && j.segments.length) {
      let at = 0;
      const segs = (j.segments as { durationS?: unknown; gbps?: unknown }[]).map((s, i) => {
        const d = Number(s.durationS);
        if (!(d > 0)) throw new FormatError(`${name}: segment ${i} needs durationS > 0`);
        at += d;
        return { untilS: at, gbps: checkGbps(Number(s.gbps), `${name} segment ${i}`) };
      });
      return { kind: 'timed', name, segments: segs.map((s, i) => (i === segs.length - 1 ? { ...s, untilS: Infinity } : s)) };
    }
    throw new FormatError(`${name}: expected {"gbps": [...]} or {"segments": [{"durationS", "gbps"}]}`);
  }
  const rows = t.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter(Boolean).map((l, i) => {
    const [a, b] = l.split(/[\s,]+/).map(Number);
    if (!(Number.isFinite(a) && a! >= 0)) throw new FormatError(`${name}: line ${i + 1}: expected '<start seconds> <gbps>'`);
    return { startS: a!, gbps: checkGbps(b!, `${name} line ${i + 1}`) };
  });
  if (!rows.length || rows[0]!.startS !== 0) throw new FormatError(`${name}: the first line must start at 0 s`);
  rows.forEach((r, i) => { if (i && r.startS <= rows[i - 1]!.startS) throw new FormatError(`${name}: start times must increase`); });
  return { kind: 'timed', name, segments: rows.map((r, i) => ({ untilS: rows[i + 1]?.startS ?? Infinity, gbps: r.gbps })) };
}

/** Bandwidth (Gbps) while chunk `chunk` is sent at time `tS`. */
export function rateAt(trace: BandwidthTrace, chunk: number, tS: number): number {
  if (trace.kind === 'per-chunk') return trace.gbps[Math.min(chunk, trace.gbps.length - 1)]!;
  for (const s of trace.segments) if (tS < s.untilS) return s.gbps;
  return trace.segments[trace.segments.length - 1]!.gbps;
}

/** Seconds to move `bytes` of chunk `chunk` starting at `startS` (bytes * 8 / bandwidth, per segment). */
export function transferSeconds(trace: BandwidthTrace, chunk: number, startS: number, bytes: number): number {
  if (trace.kind === 'per-chunk') return (bytes * 8) / (rateAt(trace, chunk, startS) * 1e9);
  let t = startS, left = bytes * 8;
  for (const s of trace.segments) {
    if (t >= s.untilS) continue;
    const can = (s.untilS - t) * s.gbps * 1e9;
    if (can >= left) return t + left / (s.gbps * 1e9) - startS;
    left -= can;
    t = s.untilS;
  }
  return t - startS; // unreachable: the last segment is unbounded
}
