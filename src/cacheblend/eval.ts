/**
 * The blend evaluation behind `kvlab blend eval`: for each context (a prefix, chunks prefilled on
 * their own, a continuation), run every method at every ratio through the fusor with the
 * continuation as the query, and compare its logits with full prefill's. Per row (a method at a
 * ratio, means over contexts):
 *   kl           mean over continuation positions of KL(P_exact || P_method) (DESIGN.md)
 *   pplDeltaPct  (ppl_method / ppl_exact - 1) x 100 of continuation tokens 2..Q (each predicted by the
 *                logits of the token before it, which the fused query rows provide)
 *   top1         share of positions where the method's argmax equals full prefill's
 *   attnDev      relative L2 of the continuation's final hidden states (instrument.ts)
 *   ratio, computeFraction   as the fusor reports them (DESIGN.md definitions)
 */
import type { Model } from '../model/model.js';
import { fuse, type FuseResult } from './fusor.js';
import { attentionDeviation, meanKL } from './instrument.js';
import type { PolicyName } from './policies.js';
import { precomputeChunks } from './precompute.js';

export interface BlendContext {
  id: string;
  chunks: number[][];
  continuation: number[];
}

export interface BlendEvalRow {
  method: string;
  ratio: number;
  /** The ratio the method was asked for (null for methods without one). */
  requestedRatio: number | null;
  computeFraction: number;
  kl: number;
  pplDeltaPct: number;
  top1: number;
  attnDev: number;
  contexts: number;
}

export const DEFAULT_RATIOS = [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0];
export const RATIO_METHODS: readonly PolicyName[] = ['cacheblend', 'cacheblend-released', 'lmcache-v1', 'cacheblend-window', 'epic', 'random', 'oracle'];
export const FIXED_METHODS: readonly PolicyName[] = ['full-reuse', 'full-recompute', 'prefix-caching'];

function nll(logits: Float32Array, vocab: number, row: number, target: number): number {
  let mx = -Infinity;
  for (let j = 0; j < vocab; j++) mx = Math.max(mx, logits[row * vocab + j]!);
  let s = 0;
  for (let j = 0; j < vocab; j++) s += Math.exp(logits[row * vocab + j]! - mx);
  return Math.log(s) + mx - logits[row * vocab + target]!;
}

function argmax(l: Float32Array, vocab: number, row: number): number {
  let b = 0;
  for (let j = 1; j < vocab; j++) if (l[row * vocab + j]! > l[row * vocab + b]!) b = j;
  return b;
}

interface Score { kl: number; ppl: number; top1: number; attnDev: number }

function score(method: FuseResult, exact: FuseResult, continuation: number[], vocab: number): Score {
  const q = continuation.length;
  let nllM = 0, nllE = 0, agree = 0;
  for (let i = 0; i + 1 < q; i++) {
    nllM += nll(method.logits, vocab, i, continuation[i + 1]!);
    nllE += nll(exact.logits, vocab, i, continuation[i + 1]!);
  }
  for (let i = 0; i < q; i++) if (argmax(method.logits, vocab, i) === argmax(exact.logits, vocab, i)) agree++;
  const pplRatio = Math.exp((nllM - nllE) / Math.max(q - 1, 1));
  return { kl: meanKL(exact.logits, method.logits, vocab), ppl: (pplRatio - 1) * 100, top1: agree / q, attnDev: attentionDeviation(method, exact) };
}

export interface BlendEvalOptions {
  ratios?: readonly number[];
  methods?: readonly PolicyName[];
  /** Called after each context with (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export function blendEval(model: Model, prefix: number[], contexts: readonly BlendContext[], o: BlendEvalOptions = {}): BlendEvalRow[] {
  const ratios = o.ratios ?? DEFAULT_RATIOS;
  const methods = o.methods ?? [...FIXED_METHODS, ...RATIO_METHODS];
  const V = model.config.vocabSize;
  const acc = new Map<string, { method: string; requested: number | null; sums: number[]; n: number }>();
  contexts.forEach((ctx, ci) => {
    const chunks = precomputeChunks(model, prefix, ctx.chunks);
    const base = { prefix, chunks, query: ctx.continuation, keepHidden: true } as const;
    const exact = fuse(model, { ...base, policy: 'full-recompute' });
    exact.cache.dispose();
    for (const method of methods) {
      const asks = RATIO_METHODS.includes(method) ? ratios : [null];
      for (const requested of asks) {
        const r = fuse(model, { ...base, policy: method, ...(requested === null ? {} : { ratio: requested }) });
        r.cache.dispose();
        const s = score(r, exact, ctx.continuation, V);
        const key = `${method}@${requested}`;
        const a = acc.get(key) ?? { method, requested, sums: [0, 0, 0, 0, 0, 0], n: 0 };
        [r.ratio, r.computeFraction, s.kl, s.ppl, s.top1, s.attnDev].forEach((v, i) => { a.sums[i]! += v; });
        a.n++;
        acc.set(key, a);
      }
    }
    for (const c of chunks) c.dispose();
    o.onProgress?.(ci + 1, contexts.length);
  });
  return [...acc.values()].map(({ method, requested, sums, n }) => {
    const [ratio, computeFraction, kl, pplDeltaPct, top1, attnDev] = sums.map((x) => x / n) as [number, number, number, number, number, number];
    return { method, ratio, requestedRatio: requested, computeFraction, kl, pplDeltaPct, top1, attnDev, contexts: n };
  });
}
