/**
 * Text generation over a Model: greedy, temperature and top-p sampling from a seeded generator,
 * stop tokens, and a streaming callback per token.
 */
import { ArgumentError } from '../runtime/errors.js';
import type { KVCache } from './kv-cache.js';
import type { Model } from './model.js';

export interface GenerateOptions {
  maxTokens?: number;
  /** <= 0 (default): greedy. */
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Generation stops after producing one of these (it is not included). Default: [eosId]. */
  stopTokens?: readonly number[];
  /** Called with each new token as it is produced; return false to stop. */
  onToken?: (token: number, index: number) => boolean | void;
}

export interface GenerateResult {
  tokens: number[];
  stopReason: 'stop-token' | 'max-tokens' | 'context' | 'callback';
  /** The stop token that ended generation, if any. */
  stopToken: number | null;
  cache: KVCache;
  prefillMs: number;
  decodeMs: number;
}

/** A small seeded PRNG (mulberry32): the same seed gives the same samples on every backend. */
export function seededUniform(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function generate(model: Model, prompt: readonly number[], o: GenerateOptions = {}): GenerateResult {
  const maxTokens = o.maxTokens ?? 256;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new ArgumentError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (prompt.length === 0) throw new ArgumentError('generate needs a prompt of at least one token (e.g. BOS)');
  const ctx = model.config.maxSeqLen;
  if (prompt.length > ctx) throw new ArgumentError(`the prompt has ${prompt.length} tokens but the model's context is ${ctx}`);
  const temperature = o.temperature ?? 0;
  const topP = o.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) throw new ArgumentError(`topP must be in (0, 1], got ${topP}`);
  const stops = new Set(o.stopTokens ?? [model.config.eosId]);
  const rand = seededUniform(o.seed ?? 0);
  const cache = model.newCache(Math.min(ctx, prompt.length + maxTokens));
  const t0 = performance.now();
  let logits = model.prefill(prompt, { past: cache }).logits;
  const t1 = performance.now();
  const tokens: number[] = [];
  let stopReason: GenerateResult['stopReason'] = 'max-tokens';
  let stopToken: number | null = null;
  while (tokens.length < maxTokens) {
    const next = model.sampleLogits(logits, { temperature, topP, u: rand() });
    if (stops.has(next)) {
      stopReason = 'stop-token';
      stopToken = next;
      break;
    }
    tokens.push(next);
    if (o.onToken?.(next, tokens.length - 1) === false) {
      stopReason = 'callback';
      break;
    }
    if (tokens.length === maxTokens) break;
    if (cache.length >= cache.capacity) {
      stopReason = 'context';
      break;
    }
    logits = model.decode(next, cache);
  }
  return { tokens, stopReason, stopToken, cache, prefillMs: t1 - t0, decodeMs: performance.now() - t1 };
}
