/**
 * CacheGen's per-chunk choice. Before sending chunk i, with the throughput measured on the previous
 * chunk and the time left before the TTFT SLO: take the highest-quality level whose bytes, for all
 * remaining chunks, arrive (and the last decodes) in time; if none fits, send the remaining chunks'
 * text and recompute them when that is faster than the smallest level, else the smallest level.
 */
import { ArgumentError } from '../runtime/errors.js';
import type { StreamLevel } from './levels.js';

/** A level index (into the best-first levels) or the chunk's text. */
export type Choice = number | 'text';

export type StreamPolicy =
  | { readonly kind: 'adaptive' }
  | { readonly kind: 'fixed'; readonly level: number }
  | { readonly kind: 'text' };

export interface StreamSetup {
  /** Chunks in the context. */
  readonly chunks: number;
  /** Best quality first. */
  readonly levels: readonly StreamLevel[];
  /** Bytes sent for a chunk's text (token ids). */
  readonly textBytesPerChunk: number;
  /** Seconds to recompute one chunk from its text (prefill). */
  readonly recomputeS: number;
  /** Seconds to decode one chunk at each level (overlaps the next chunk's transfer). */
  readonly decodeS: readonly number[];
  readonly sloS: number;
  /** Throughput assumed before anything was measured (chunk 0), in Gbps. */
  readonly initialGbps: number;
}

export interface ChoiceState {
  readonly chunk: number;
  /** Time since the request (s) when chunk `chunk` can start sending. */
  readonly nowS: number;
  /** When the GPU finishes what it already has (decode or recompute of earlier chunks). */
  readonly gpuFreeS: number;
  /** Throughput estimate in bits per second. */
  readonly estBps: number;
}

export function checkSetup(s: StreamSetup): void {
  if (!(Number.isInteger(s.chunks) && s.chunks >= 1)) throw new ArgumentError(`chunks must be an integer >= 1 but is ${s.chunks}`);
  if (!s.levels.length) throw new ArgumentError('the streamer needs at least one level');
  if (s.decodeS.length !== s.levels.length) throw new ArgumentError(`decodeS has ${s.decodeS.length} entries for ${s.levels.length} levels`);
  for (const [n, v] of [['sloS', s.sloS], ['recomputeS', s.recomputeS], ['initialGbps', s.initialGbps]] as const)
    if (!(Number.isFinite(v) && v > 0)) throw new ArgumentError(`${n} must be > 0 but is ${v}`);
  if (!(s.textBytesPerChunk >= 0)) throw new ArgumentError('textBytesPerChunk must be >= 0');
}

export function policyName(p: StreamPolicy, levels: readonly StreamLevel[]): string {
  return p.kind === 'adaptive' ? 'adaptive' : p.kind === 'text' ? 'text' : `level-${levels[p.level]!.name}`;
}

/** The choice for the next chunk under `policy`. */
export function choose(setup: StreamSetup, policy: StreamPolicy, st: ChoiceState): Choice {
  if (policy.kind === 'text') return 'text';
  if (policy.kind === 'fixed') return policy.level;
  const remaining = setup.chunks - st.chunk;
  // Finish time if every remaining chunk goes at level j: transfers back to back, the last decode after.
  const finish = (j: number) => st.nowS + (remaining * setup.levels[j]!.bytesPerChunk * 8) / st.estBps + setup.decodeS[j]!;
  for (let j = 0; j < setup.levels.length; j++) if (finish(j) <= setup.sloS) return j;
  const textFinish = Math.max(st.nowS + (setup.textBytesPerChunk * 8) / st.estBps, st.gpuFreeS) + remaining * setup.recomputeS;
  const last = setup.levels.length - 1;
  return textFinish < finish(last) ? 'text' : last;
}
