/**
 * Answering one QA prompt: greedy decoding after either a plain full prefill or a CacheBlend fusion
 * of precomputed chunk KV. The fusor returns the fused cache (prefix, chunks, query) sized exactly
 * for them; decoding copies it into a cache with room for the answer and continues with
 * Model.decode, so the answer's tokens attend to the fused KV as a serving engine would.
 */
import type { ChunkKV } from '../../cacheblend/chunk.js';
import { fuse } from '../../cacheblend/fusor.js';
import type { PolicyName, PolicyOptions } from '../../cacheblend/policies.js';
import type { KVCache } from '../../model/kv-cache.js';
import type { Model } from '../../model/model.js';
import type { QaPromptTokens } from './prompt.js';

export const MAX_ANSWER_TOKENS = 8;

export interface Answer {
  /** Answer token ids (EOS excluded). */
  tokens: number[];
  /** f32 logits of the first answer token. */
  firstLogits: Float32Array;
}

export interface FusedAnswer extends Answer {
  ratio: number;
  computeFraction: number;
}

/** Index of the largest value (the first one on ties, as torch.argmax). */
export function argmax(v: Float32Array): number {
  let b = 0;
  for (let j = 1; j < v.length; j++) if (v[j]! > v[b]!) b = j;
  return b;
}

/** Greedy continuation from `logits` (of the cache's last token) until EOS or the limit. */
function decodeGreedy(model: Model, cache: KVCache, logits: Float32Array, maxTokens: number): number[] {
  const out: number[] = [];
  for (let t = argmax(logits); t !== model.config.eosId && out.length < maxTokens; t = argmax(logits)) {
    out.push(t);
    if (out.length === maxTokens || cache.length >= cache.capacity) break;
    logits = model.decode(t, cache);
  }
  return out;
}

/** Full prefill of prefix + chunks + query, then greedy decoding: the exact reference. */
export function answerFullPrefill(model: Model, p: QaPromptTokens, maxTokens = MAX_ANSWER_TOKENS): Answer {
  const prompt = [...p.prefix, ...p.chunks.flat(), ...p.query];
  const cap = Math.min(model.config.maxSeqLen, prompt.length + maxTokens);
  const { logits, cache } = model.prefill(prompt, { capacity: cap });
  try {
    return { tokens: decodeGreedy(model, cache, logits, maxTokens), firstLogits: logits };
  } finally {
    cache.dispose();
  }
}

/** Fuses precomputed chunks with `policy` (ratio and options), then decodes greedily from the fused cache. */
export function answerFused(model: Model, prefix: readonly number[], chunks: readonly ChunkKV[], query: readonly number[],
  policy: PolicyName, options: PolicyOptions = {}, maxTokens = MAX_ANSWER_TOKENS): FusedAnswer {
  const r = fuse(model, { ...options, prefix, chunks, query, policy, logits: 'last' });
  let cache: KVCache | null = null;
  try {
    cache = model.newCache(Math.min(model.config.maxSeqLen, r.cache.length + maxTokens));
    const span = r.cache.exportSpan();
    try {
      cache.appendSpan(span.kv, span.positions);
    } finally {
      span.kv.dispose();
    }
    return { tokens: decodeGreedy(model, cache, r.logits, maxTokens), firstLogits: r.logits, ratio: r.ratio, computeFraction: r.computeFraction };
  } finally {
    r.cache.dispose();
    cache?.dispose();
  }
}
