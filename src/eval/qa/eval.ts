/**
 * The QA evaluation behind `kvlab qa eval`: for each question, every chunk is prefilled on its own
 * after the prompt prefix (CacheBlend's offline step), then each method fuses the chunks with the
 * question and decodes the answer greedily from the fused KV. Scores: exact match and F1 with
 * LongBench's normalisation (metrics.ts), per question kind. Each row also carries the recompute
 * ratio and the compute fraction the fusor reports (DESIGN.md), averaged over the questions.
 *
 * Methods: full-recompute (every token recomputed: full prefill), full-reuse, prefix-caching, and
 * cacheblend, epic, random, oracle at each requested ratio.
 */
import { precomputeChunks } from '../../cacheblend/precompute.js';
import type { PolicyName, PolicyOptions } from '../../cacheblend/policies.js';
import type { Model } from '../../model/model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { ArgumentError } from '../../runtime/errors.js';
import { exactMatch, qaF1 } from '../metrics.js';
import { answerFused } from './answer.js';
import { QA_KINDS, type QaRecord } from './dataset.js';
import { promptLength, promptText, tokenizePrompt } from './prompt.js';

export const QA_RATIOS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5];
export const QA_FIXED_METHODS: readonly PolicyName[] = ['full-recompute', 'full-reuse', 'prefix-caching'];
export const QA_RATIO_METHODS: readonly PolicyName[] = ['cacheblend', 'cacheblend-window', 'epic', 'random', 'oracle', 'query-attention'];

export interface QaEvalRow {
  method: string;
  /** The ratio asked for (null for methods without one). */
  requestedRatio: number | null;
  /** A question kind, or 'all'. */
  kind: string;
  em: number;
  f1: number;
  /** Mean recompute ratio r and compute fraction over the questions. */
  ratio: number;
  computeFraction: number;
  questions: number;
}

export interface QaPrediction { id: string; kind: string; method: string; requestedRatio: number | null; prediction: string; em: number; f1: number }

export interface QaEvalOptions {
  ratios?: readonly number[];
  fixedMethods?: readonly PolicyName[];
  ratioMethods?: readonly PolicyName[];
  /** Options for every policy (e.g. cacheblend's checkLayer or deviation); the ratio is set per row. */
  policyOptions?: Omit<PolicyOptions, 'ratio'>;
  /** Called after each question with (done, total). */
  onProgress?: (done: number, total: number) => void;
  /** Receives every prediction (for a per-question dump). */
  onPrediction?: (p: QaPrediction) => void;
}

export function qaEval(model: Model, tok: Tokenizer, records: readonly QaRecord[], o: QaEvalOptions = {}): QaEvalRow[] {
  const ratios = o.ratios ?? QA_RATIOS;
  for (const r of ratios) if (!(r >= 0 && r <= 1)) throw new ArgumentError(`ratio ${r} is outside [0, 1]`);
  const methods: [PolicyName, number | null][] = [
    ...(o.fixedMethods ?? QA_FIXED_METHODS).map((m): [PolicyName, null] => [m, null]),
    ...(o.ratioMethods ?? QA_RATIO_METHODS).flatMap((m) => ratios.map((r): [PolicyName, number] => [m, r])),
  ];
  const acc = new Map<string, QaEvalRow>();
  const add = (method: string, requestedRatio: number | null, kind: string, em: number, f1: number, ratio: number, cf: number) => {
    const key = `${method}@${requestedRatio}@${kind}`;
    const a = acc.get(key) ?? { method, requestedRatio, kind, em: 0, f1: 0, ratio: 0, computeFraction: 0, questions: 0 };
    a.em += em; a.f1 += f1; a.ratio += ratio; a.computeFraction += cf; a.questions++;
    acc.set(key, a);
  };
  records.forEach((rec, qi) => {
    const p = tokenizePrompt(tok, promptText(rec.chunks, rec.input));
    if (promptLength(p) + 1 > model.config.maxSeqLen)
      throw new ArgumentError(`question ${rec._id}: ${promptLength(p)} prompt tokens do not fit the model's context of ${model.config.maxSeqLen}`);
    const chunks = precomputeChunks(model, p.prefix, p.chunks);
    try {
      for (const [method, requested] of methods) {
        const a = answerFused(model, p.prefix, chunks, p.query, method, { ...o.policyOptions, ...(requested === null ? {} : { ratio: requested }) });
        const prediction = tok.decode(a.tokens);
        const em = exactMatch(prediction, rec.answers), f1 = qaF1(prediction, rec.answers);
        add(method, requested, rec.kind, em, f1, a.ratio, a.computeFraction);
        add(method, requested, 'all', em, f1, a.ratio, a.computeFraction);
        o.onPrediction?.({ id: rec._id, kind: rec.kind, method, requestedRatio: requested, prediction, em, f1 });
      }
    } finally {
      for (const c of chunks) c.dispose();
    }
    o.onProgress?.(qi + 1, records.length);
  });
  const kindOrder = [...QA_KINDS, 'all'] as string[];
  return [...acc.values()]
    .map((a) => ({ ...a, em: a.em / a.questions, f1: a.f1 / a.questions, ratio: a.ratio / a.questions, computeFraction: a.computeFraction / a.questions }))
    .sort((x, y) => kindOrder.indexOf(x.kind) - kindOrder.indexOf(y.kind));
}
