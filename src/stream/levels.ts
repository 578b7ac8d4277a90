/**
 * What the streamer chooses between for each chunk: the codec's quality levels (bytes per chunk and
 * quality, from `kvlab codec eval --json`) and the text of the chunk (a few bytes, then recomputed).
 * Bytes per chunk and level = fp16 KV bytes of the chunk / the level's measured ratio vs fp16.
 */
import type { ModelConfig } from '../model/config.js';
import { ArgumentError, FormatError } from '../runtime/errors.js';

export type QualityMetric = 'top1' | 'kl' | 'pplDeltaPct';

export interface StreamLevel {
  readonly name: string;
  readonly ratioVsFp16: number;
  readonly bytesPerChunk: number;
  /** The level's quality in `metric` units (text, i.e. exact KV, is top1 1, kl 0, pplDeltaPct 0). */
  readonly quality: number;
}

/** The quality of exact KV (text recomputed) in each metric. */
export const EXACT_QUALITY: Record<QualityMetric, number> = { top1: 1, kl: 0, pplDeltaPct: 0 };

/** fp16 bytes of the K and V of `tokens` tokens: tokens x layers x 2 x kvHeads x headDim x 2. */
export function fp16KvBytes(config: Pick<ModelConfig, 'nLayers' | 'nKvHeads' | 'headDim'>, tokens: number): number {
  return tokens * config.nLayers * 2 * config.nKvHeads * config.headDim * 2;
}

interface EvalRow { codec?: unknown; level?: unknown; ratioVsFp16?: unknown; [k: string]: unknown }

/**
 * Levels of `codec` from codec-eval JSON (an array of rows, or an object with `rows`); rows of one
 * level (several contexts) are averaged. Sorted best quality first (smallest ratio first).
 * `tables`: rows measured with a per-model profile (the codec's tables sent once, as CacheGen's
 * streamer assumes; the default where the JSON has such rows) or with tables shipped in every chunk.
 */
export function levelsFromCodecEval(json: unknown, options: { codec?: string; fp16ChunkBytes: number; metric?: QualityMetric; what?: string;
  tables?: 'profile' | 'shipped' }): StreamLevel[] {
  const what = options.what ?? 'codec eval JSON';
  const codec = options.codec ?? 'cachegen';
  const metric = options.metric ?? 'top1';
  if (!(options.fp16ChunkBytes > 0)) throw new ArgumentError(`fp16ChunkBytes must be > 0 but is ${options.fp16ChunkBytes}`);
  const rows = (Array.isArray(json) ? json : (json as { rows?: unknown })?.rows) as EvalRow[] | undefined;
  if (!Array.isArray(rows)) throw new FormatError(`${what}: expected an array of rows or {"rows": [...]}`);
  const hasProfileRows = rows.some((r) => r?.codec === codec && r.profile != null);
  const tables = options.tables ?? (hasProfileRows ? 'profile' : 'shipped');
  const by = new Map<string, { ratio: number[]; q: number[] }>();
  for (const [i, r] of rows.entries()) {
    if (r?.codec !== codec || (r.profile != null) !== (tables === 'profile')) continue;
    const ratio = Number(r.ratioVsFp16), q = Number(r[metric]);
    if (typeof r.level !== 'string' || !(ratio > 0) || !Number.isFinite(q))
      throw new FormatError(`${what}: row ${i} (codec ${codec}) needs level, ratioVsFp16 > 0 and a numeric ${metric}`);
    const g = by.get(r.level) ?? { ratio: [], q: [] };
    g.ratio.push(ratio);
    g.q.push(q);
    by.set(r.level, g);
  }
  if (by.size === 0) throw new FormatError(`${what}: no rows of codec '${codec}'${tables === 'profile' ? ' measured with a profile' : ''}`);
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return [...by].map(([name, g]) => {
    const ratioVsFp16 = mean(g.ratio);
    return { name, ratioVsFp16, bytesPerChunk: Math.round(options.fp16ChunkBytes / ratioVsFp16), quality: mean(g.q) };
  }).sort((a, b) => a.ratioVsFp16 - b.ratioVsFp16);
}

/** Whether quality `a` is better than `b` in `metric` (top1: higher; kl and ppl change: lower). */
export function betterQuality(metric: QualityMetric, a: number, b: number): boolean {
  return metric === 'top1' ? a > b : a < b;
}
