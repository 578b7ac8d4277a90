/**
 * Text generation over a Model: greedy, temperature and top-p sampling from a seeded generator,
 * stop tokens, and a streaming callback per token.
 */
import { ArgumentError } from '../runtime/errors.js';
import type { SampleOptions } from '../runtime/ops.js';
import type { Fence } from '../runtime/stream.js';
import { Tensor } from '../runtime/tensor.js';
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
  /**
   * On CUDA (default true): each step samples its successor's token on the device and the host
   * queues one step ahead (queuedLoop). false: every step's logits are read back and sampled on the
   * host, the reference path. Greedy tokens are the same either way; sampled ones may differ only
   * at near-ties of float rounding (kernels/sample.cuh). Ignored on the CPU.
   */
  queued?: boolean;
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
  const logits = model.prefill(prompt, { past: cache }).logits;
  const t1 = performance.now();
  const tokens: number[] = [];
  const state: { stopReason: GenerateResult['stopReason']; stopToken: number | null } = { stopReason: 'max-tokens', stopToken: null };
  // Takes the next token; true when generation ends with it.
  const accept = (next: number): boolean => {
    if (stops.has(next)) {
      state.stopReason = 'stop-token';
      state.stopToken = next;
      return true;
    }
    tokens.push(next);
    if (o.onToken?.(next, tokens.length - 1) === false) {
      state.stopReason = 'callback';
      return true;
    }
    return tokens.length === maxTokens;
  };
  if (maxTokens > 0) {
    const sampling = (): SampleOptions => ({ temperature, topP, u: rand() });
    const first = model.sampleLogits(logits, sampling());
    if (model.device.isCuda && o.queued !== false) queuedLoop(model, cache, first, maxTokens, sampling, accept, state);
    else hostLoop(model, cache, first, sampling, accept, state);
  }
  return { tokens, stopReason: state.stopReason, stopToken: state.stopToken, cache, prefillMs: t1 - t0, decodeMs: performance.now() - t1 };
}

type Accept = (next: number) => boolean;
type StopState = { stopReason: GenerateResult['stopReason'] };

/** Decode, read the logits back, sample on the host, repeat. */
function hostLoop(model: Model, cache: KVCache, first: number, sampling: () => SampleOptions, accept: Accept, state: StopState): void {
  for (let next = first; !accept(next);) {
    if (cache.length >= cache.capacity) {
      state.stopReason = 'context';
      return;
    }
    next = model.sampleLogits(model.decode(next, cache), sampling());
  }
}

/**
 * The same loop with the GPU never waiting for the host: each step samples its successor's token on
 * the device (ids[i + 1]), and the host queues step i + 1 before it reads token i + 1 back, so the
 * read-back, the stop checks and the next step's launches overlap the step in flight. A step queued
 * for a token that turns out to end generation is taken back out of the cache.
 */
function queuedLoop(model: Model, cache: KVCache, first: number, maxTokens: number, sampling: () => SampleOptions,
  accept: Accept, state: StopState): void {
  const ids = Tensor.empty([maxTokens], { dtype: 'i32', device: model.device });
  const host = Tensor.empty([maxTokens], { dtype: 'i32', pinned: true });
  const stepViews: Tensor[][] = [];  // step i's views of ids and host, freed once its token has landed
  const release = (i: number): void => {
    for (const v of stepViews[i] ?? []) v.dispose();
    stepViews[i] = [];
  };
  const fences: Fence[] = [];
  const landed: Tensor[] = [];  // landed[i]: token i on the host once fences[i] is passed
  let queued = 0;  // steps queued: step i decodes token i and samples token i + 1
  const enqueue = (): void => {
    const i = queued++;
    const views: Tensor[] = (stepViews[i] = []);
    const view = (t: Tensor, at: number): Tensor => {
      const v = t.view([1], at);
      views.push(v);
      return v;
    };
    const input = view(ids, i), sampled = view(ids, i + 1), out = view(host, i + 1);
    model.decodeQueued(input, cache, sampling(), sampled);
    landed[i + 1] = out;
    fences[i + 1] = out.copyFromQueued(sampled);
  };
  try {
    ids.write(Int32Array.of(first));
    for (let i = 0, next = first; ; i++) {
      const done = accept(next);
      if (done) {
        cache.truncate(cache.length - (queued - i));
        return;
      }
      if (queued === i) {
        if (cache.length >= cache.capacity) {
          state.stopReason = 'context';
          return;
        }
        enqueue();
      }
      // Token i + 2 is wanted only if token i + 1 does not end generation: queue its step now anyway.
      if (i + 2 < maxTokens && cache.length < cache.capacity) enqueue();
      fences[i + 1]!.wait();
      next = landed[i + 1]!.toTypedArray()[0]!;
      release(i);
    }
  } finally {
    // A step queued ahead may still be writing ids and host: let it land before they are freed
    // (the memory may be handed out again at once).
    try {
      fences[queued]?.wait();
    } finally {
      for (let i = 0; i < stepViews.length; i++) release(i);
      ids.dispose();
      host.dispose();
    }
  }
}
