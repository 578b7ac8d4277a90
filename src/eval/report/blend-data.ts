/**
 * The rows behind CacheBlend's figures, measured on a model and a blend context set
 * (datasets/stories260k-blend): blendEval's quality rows (Figs. 6, 16), a sweep over the number of
 * chunks (Fig. 2), full reuse's per-token KV deviation and its neighbour-layer rank correlation
 * (Figs. 7, 8), and TTFT on this machine's device beside quality (Fig. 12).
 */
import { blendEval, type BlendContext, type BlendEvalRow } from '../../cacheblend/eval.js';
import { fuse } from '../../cacheblend/fusor.js';
import { neighbourSpearman, reuseDeviation } from '../../cacheblend/instrument.js';
import type { PolicyName } from '../../cacheblend/policies.js';
import { precomputeChunks } from '../../cacheblend/precompute.js';
import type { Model } from '../../model/model.js';
import { ArgumentError } from '../../runtime/errors.js';
import { medianTimeMs } from '../../runtime/timing.js';
import type { BlendQualityRow, ChunkCountRow, DeviationRow, QualityTtftRow, SpearmanRow } from '../figures/cacheblend.js';

export interface BlendFigureData {
  evalRows: BlendEvalRow[];
  quality: BlendQualityRow[];
  chunks: ChunkCountRow[];
  deviation: DeviationRow[];
  spearman: SpearmanRow[];
  ttft: QualityTtftRow[];
}

export interface BlendDataOptions {
  /** Contexts for the quality rows (default all). */
  contexts?: number;
  /** Contexts for the chunk sweep and the deviation rows (default 2). */
  sweepContexts?: number;
  ratios?: readonly number[];
  /** Timed repetitions per TTFT (median; default 5). */
  reps?: number;
  onStep?: (what: string) => void;
}

const TTFT_METHODS: readonly [string, PolicyName, number | undefined][] = [
  ['full-recompute', 'full-recompute', undefined], ['prefix-caching', 'prefix-caching', undefined],
  ['full-reuse', 'full-reuse', undefined], ['cacheblend 5%', 'cacheblend', 0.05],
  ['cacheblend 15%', 'cacheblend', 0.15], ['cacheblend 30%', 'cacheblend', 0.3],
];

export function blendFigureData(model: Model, prefix: number[], contexts: readonly BlendContext[], o: BlendDataOptions = {}): BlendFigureData {
  if (contexts.length === 0) throw new ArgumentError('blendFigureData needs at least one context');
  const use = contexts.slice(0, o.contexts ?? contexts.length);
  const sweep = contexts.slice(0, o.sweepContexts ?? 2);
  o.onStep?.(`quality: every method at every ratio on ${use.length} contexts`);
  const evalRows = blendEval(model, prefix, use, { ...(o.ratios ? { ratios: o.ratios } : {}) });
  const quality = evalRows.map((r) => ({ method: r.method, ratio: r.ratio, quality: r.top1, kl: r.kl, attnDev: r.attnDev }));

  o.onStep?.(`quality vs number of chunks on ${sweep.length} contexts`);
  const nMax = Math.min(...sweep.map((c) => c.chunks.length));
  const chunks: ChunkCountRow[] = [];
  for (let n = 1; n <= nMax; n++) {
    const cut = sweep.map((c) => ({ ...c, chunks: c.chunks.slice(0, n) }));
    const rows = blendEval(model, prefix, cut, { ratios: [0.15], methods: ['full-reuse', 'full-recompute', 'cacheblend'] });
    for (const r of rows) chunks.push({ chunks: n, method: r.method, quality: r.top1 });
  }

  o.onStep?.(`per-token KV deviation on ${sweep.length} contexts`);
  const deviation: DeviationRow[] = [];
  const spearman: SpearmanRow[] = [];
  for (const ctx of sweep) {
    const kv = precomputeChunks(model, prefix, ctx.chunks);
    try {
      const dev = reuseDeviation(model, prefix, kv).kv;
      dev.forEach((d, layer) => {
        let mx = 0;
        for (const x of d) mx = Math.max(mx, x);
        // reuseDeviation covers the chunk tokens only (the prefix is exact under reuse).
        for (let i = 0; i < d.length; i++) deviation.push({ layer, relDeviation: mx > 0 ? d[i]! / mx : 0 });
      });
      neighbourSpearman(dev).forEach((s, layer) => spearman.push({ layer, spearman: s, context: ctx.id }));
    } finally {
      for (const c of kv) c.dispose();
    }
  }

  o.onStep?.('TTFT per method');
  const ctx = use[0]!;
  const kv = precomputeChunks(model, prefix, ctx.chunks);
  const ttft: QualityTtftRow[] = [];
  try {
    for (const [label, policy, ratio] of TTFT_METHODS) {
      const ms = medianTimeMs(() => {
        fuse(model, { prefix, chunks: kv, query: ctx.continuation, policy, ...(ratio === undefined ? {} : { ratio }), logits: 'last' }).cache.dispose();
      }, model.device, o.reps ?? 5, 1);
      const q = evalRows.find((r) => r.method === policy && (ratio === undefined || r.requestedRatio === ratio));
      if (q) ttft.push({ method: label, ttftMs: ms, quality: q.top1 });
    }
  } finally {
    for (const c of kv) c.dispose();
  }
  return { evalRows, quality, chunks, deviation, spearman, ttft };
}
