/**
 * The QA model's rows for CacheBlend's Figs. 12 and 16 with F1, as the papers plot them: `qaEval`
 * (F1 per method, ratio and question kind) and the time to first token of each method on this
 * machine's device, timed on the first questions' prompts (chunks precomputed, query fused).
 */
import { fuse } from '../../cacheblend/fusor.js';
import type { PolicyName } from '../../cacheblend/policies.js';
import { precomputeChunks } from '../../cacheblend/precompute.js';
import type { Model } from '../../model/model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { ArgumentError } from '../../runtime/errors.js';
import { medianTimeMs } from '../../runtime/timing.js';
import type { QualityTtftRow } from '../figures/cacheblend.js';
import type { QaRecord } from '../qa/dataset.js';
import { qaEval, type QaEvalRow } from '../qa/eval.js';
import { promptText, tokenizePrompt } from '../qa/prompt.js';

export interface QaFigureData {
  rows: QaEvalRow[];
  /** F1 over all kinds beside the median TTFT of each method. */
  ttft: QualityTtftRow[];
}

const TTFT_METHODS: readonly [string, PolicyName, number | null][] = [
  ['full-recompute', 'full-recompute', null], ['prefix-caching', 'prefix-caching', null], ['full-reuse', 'full-reuse', null],
  ['cacheblend 15%', 'cacheblend', 0.15], ['epic 15%', 'epic', 0.15], ['query-attention 15%', 'query-attention', 0.15],
];

export interface QaDataOptions {
  ratios?: readonly number[];
  /** Questions whose prompts are timed (default 3). */
  timedQuestions?: number;
  reps?: number;
}

export function qaFigureData(model: Model, tok: Tokenizer, records: readonly QaRecord[], o: QaDataOptions = {}): QaFigureData {
  if (records.length === 0) throw new ArgumentError('qaFigureData needs at least one question');
  const ratios = o.ratios ?? [0.15];
  if (!ratios.includes(0.15)) throw new ArgumentError('qaFigureData: the ratios must include 0.15 (the TTFT figure compares at 15%)');
  const rows = qaEval(model, tok, records, { ratios });
  const timed = records.slice(0, o.timedQuestions ?? 3);
  const sums = new Map<string, number>();
  for (const rec of timed) {
    const p = tokenizePrompt(tok, promptText(rec.chunks, rec.input));
    const chunks = precomputeChunks(model, p.prefix, p.chunks);
    try {
      for (const [label, policy, ratio] of TTFT_METHODS) {
        const ms = medianTimeMs(() => {
          fuse(model, { prefix: p.prefix, chunks, query: p.query, policy, logits: 'last', ...(ratio === null ? {} : { ratio }) }).cache.dispose();
        }, model.device, o.reps ?? 3, 1);
        sums.set(label, (sums.get(label) ?? 0) + ms);
      }
    } finally {
      for (const c of chunks) c.dispose();
    }
  }
  const ttft: QualityTtftRow[] = [];
  for (const [label, policy, ratio] of TTFT_METHODS) {
    const q = rows.find((r) => r.kind === 'all' && r.method === policy && r.requestedRatio === ratio);
    if (q) ttft.push({ method: label, ttftMs: sums.get(label)! / timed.length, quality: q.f1 });
  }
  return { rows, ttft };
}
