/**
 * CacheBlend's figures (Yao et al., EuroSys 2025) over kvlab's rows:
 *   Fig. 2   quality vs number of chunks, full reuse vs full recompute (and cacheblend)
 *   Fig. 6   attention deviation vs recompute ratio, per selection policy
 *   Fig. 7   CDF of per-token KV deviation of full reuse, per layer
 *   Fig. 8   Spearman correlation of per-token deviation between neighbouring layers
 *   Fig. 12  quality vs TTFT: full recompute, prefix caching, full reuse, cacheblend
 *   Fig. 16  quality vs recompute ratio, per method
 * Quality is whatever the rows carry in `quality` (top-1 agreement with full prefill on
 * stories260K, or F1 on a QA set); `qualityTitle` names it on the axis.
 */
import { fmt, HEIGHT, isMissing, makeFigure, missingFigure, WIDTH, type Figure, type Provenance, type Rows } from './figure.js';

/** A method's quality at a ratio (blendEval rows carry these fields). */
export interface BlendQualityRow {
  method: string;
  ratio: number;
  /** Higher is better: top-1 agreement or F1. */
  quality: number;
  /** Mean KL(P_exact || P_method) in nats, where measured. */
  kl?: number;
  attnDev?: number;
}

export interface ChunkCountRow {
  chunks: number;
  method: string;
  quality: number;
}

export interface DeviationRow {
  layer: number;
  /** Per-token KV deviation of full reuse divided by the layer's largest (0..1]. */
  relDeviation: number;
}

export interface SpearmanRow {
  /** The pair (layer, layer + 1). */
  layer: number;
  spearman: number;
  context: string;
}

export interface QualityTtftRow {
  method: string;
  ttftMs: number;
  quality: number;
}

export interface QualityAxis {
  /** Axis title with unit, e.g. 'top-1 agreement with full prefill (fraction)'. */
  title: string;
}

const TOP1: QualityAxis = { title: 'top-1 agreement with full prefill (fraction)' };

const head = (id: string, title: string, provenance: Provenance, claim: string) =>
  ({ id, family: 'cacheblend' as const, title, provenance, claim });

const methodColor = { field: 'method', type: 'nominal', title: 'method' } as const;

function meanBy<T>(rows: readonly T[], pick: (r: T) => number): number {
  return rows.length ? rows.reduce((s, r) => s + pick(r), 0) / rows.length : NaN;
}

/** Fig. 2: quality as the number of reused chunks grows, reuse vs recompute. */
export function fig2QualityVsChunks(rows: Rows<ChunkCountRow>, p: Provenance, q: QualityAxis = TOP1): Figure {
  const h = head('cacheblend-fig2', 'Quality vs number of context chunks: full reuse loses cross-chunk attention', p,
    'full KV reuse loses quality as more chunks are reused (F1 0.26 -> 0.09 on 2WikiMQA, Mistral-7B); full recompute keeps it.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const at = (m: string, n: number) => rows.find((r) => r.method === m && r.chunks === n)?.quality;
  const lo = Math.min(...rows.map((r) => r.chunks)), hi = Math.max(...rows.map((r) => r.chunks));
  const measured = `full reuse ${fmt(at('full-reuse', lo))} at ${lo} chunk(s) -> ${fmt(at('full-reuse', hi))} at ${hi}; ` +
    `full recompute ${fmt(at('full-recompute', hi))}; cacheblend 15% ${fmt(at('cacheblend', hi))} at ${hi}.`;
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'chunks', type: 'quantitative', title: 'number of context chunks (count)', axis: { tickMinStep: 1 } },
      y: { field: 'quality', type: 'quantitative', title: q.title, scale: { zero: false } },
      color: methodColor,
    },
  });
}

/** Fig. 6: attention deviation vs recompute ratio per selection policy. */
export function fig6AttentionDeviation(rows: Rows<BlendQualityRow>, p: Provenance): Figure {
  const h = head('cacheblend-fig6', 'Attention deviation vs recompute ratio, per token-selection policy', p,
    'recomputing the highest-KV-deviation tokens (HKVD) cuts attention deviation faster than other selections; ' +
    '~15% recompute brings it near zero.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const withDev = rows.filter((r) => r.attnDev !== undefined);
  const reuse = withDev.find((r) => r.method === 'full-reuse')?.attnDev;
  const cb15 = nearest(withDev.filter((r) => r.method === 'cacheblend'), 0.15);
  const rnd15 = nearest(withDev.filter((r) => r.method === 'random'), 0.15);
  const measured = `attention deviation: full reuse ${fmt(reuse)}; at ~15% cacheblend ${fmt(cb15?.attnDev)}, random ${fmt(rnd15?.attnDev)} ` +
    '(relative L2 of the query\'s final hidden states vs full prefill).';
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: withDev },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'ratio', type: 'quantitative', title: 'recompute ratio (% of context tokens)', axis: { format: '%' } },
      y: { field: 'attnDev', type: 'quantitative', title: 'attention deviation (relative L2)' },
      color: methodColor,
    },
  });
}

function nearest<T extends { ratio: number }>(rows: readonly T[], r: number): T | undefined {
  return [...rows].sort((a, b) => Math.abs(a.ratio - r) - Math.abs(b.ratio - r))[0];
}

/** Fig. 7: CDF over tokens of the KV deviation of full reuse, one line per layer. */
export function fig7DeviationCdf(rows: Rows<DeviationRow>, p: Provenance): Figure {
  const h = head('cacheblend-fig7', 'CDF of per-token KV deviation under full reuse, per layer', p,
    'KV deviation is long-tailed: only about 10-15% of tokens deviate strongly from full prefill.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const measured = `the top 15% of tokens hold ${fmt(100 * topShare(rows, 0.15), 3)}% of the total KV deviation ` +
    `(mean over ${new Set(rows.map((r) => r.layer)).size} layers).`;
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows },
    transform: [
      { window: [{ op: 'cume_dist', as: 'cdf' }], sort: [{ field: 'relDeviation' }], groupby: ['layer'] },
    ],
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'relDeviation', type: 'quantitative', title: 'KV deviation / layer maximum (fraction)' },
      y: { field: 'cdf', type: 'quantitative', title: 'fraction of tokens (CDF)' },
      color: { field: 'layer', type: 'nominal', title: 'layer' },
    },
  });
}

/** Mean over layers of the share of total deviation held by the top `frac` of tokens. */
export function topShare(rows: readonly DeviationRow[], frac: number): number {
  const by = new Map<number, number[]>();
  for (const r of rows) (by.get(r.layer) ?? by.set(r.layer, []).get(r.layer)!).push(r.relDeviation);
  const shares = [...by.values()].map((d) => {
    const s = [...d].sort((a, b) => b - a);
    const total = s.reduce((a, b) => a + b, 0);
    const k = Math.max(1, Math.round(frac * s.length));
    return total > 0 ? s.slice(0, k).reduce((a, b) => a + b, 0) / total : 0;
  });
  return meanBy(shares, (x) => x);
}

/** Fig. 8: rank correlation of per-token deviation between layer l and l+1. */
export function fig8NeighbourSpearman(rows: Rows<SpearmanRow>, p: Provenance): Figure {
  const h = head('cacheblend-fig8', 'Rank correlation of per-token KV deviation between neighbouring layers', p,
    'the high-deviation tokens of one layer are those of the next (Spearman about 0.97-1.0), so a check layer can pick them.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const vals = rows.map((r) => r.spearman).filter(Number.isFinite);
  const measured = `Spearman between neighbouring layers: mean ${fmt(meanBy(vals, (x) => x))}, ` +
    `range ${fmt(Math.min(...vals))}-${fmt(Math.max(...vals))} over ${new Set(rows.map((r) => r.context)).size} contexts.`;
  const lo = Math.min(0, Math.floor(Math.min(...vals) * 10) / 10);
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, pair: `${r.layer}-${r.layer + 1}` })) },
    layer: [
      {
        mark: { type: 'point', opacity: 0.6 },
        encoding: {
          x: { field: 'pair', type: 'ordinal', title: 'layer pair (l, l+1)', sort: { field: 'layer' } },
          y: { field: 'spearman', type: 'quantitative', title: 'Spearman rank correlation (unitless)', scale: { domain: [lo, 1] } },
          color: { field: 'context', type: 'nominal', title: 'context' },
        },
      },
      {
        mark: { type: 'line', color: 'black' },
        encoding: {
          x: { field: 'pair', type: 'ordinal', sort: { field: 'layer' } },
          y: { aggregate: 'mean', field: 'spearman', type: 'quantitative' },
        },
      },
    ],
  });
}

/** Fig. 12: quality vs time to first token per method. */
export function fig12QualityVsTtft(rows: Rows<QualityTtftRow>, p: Provenance, q: QualityAxis = TOP1, id = 'cacheblend-fig12'): Figure {
  const h = head(id, `Quality vs time to first token: recompute, prefix caching, reuse, CacheBlend${id === 'cacheblend-fig12' ? '' : ' (QA, F1)'}`, p,
    'CacheBlend (15%) has 2.2-3.3x lower TTFT than full recompute, within 0.01-0.03 F1/Rouge-L of it, and +0.15-0.35 over full reuse.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const full = rows.find((r) => r.method === 'full-recompute');
  const cb = rows.find((r) => r.method.startsWith('cacheblend') && r.method.includes('15'));
  const reuse = rows.find((r) => r.method === 'full-reuse');
  const measured = full && cb
    ? `cacheblend 15% TTFT ${fmt(cb.ttftMs)} ms vs full recompute ${fmt(full.ttftMs)} ms (${fmt(full.ttftMs / cb.ttftMs)}x lower); ` +
      `quality ${fmt(cb.quality)} vs ${fmt(full.quality)} (full recompute), ${fmt(reuse?.quality)} (full reuse).`
    : 'rows lack full-recompute or cacheblend 15%.';
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows },
    layer: [
      {
        mark: { type: 'point', filled: true, size: 90 },
        encoding: {
          x: { field: 'ttftMs', type: 'quantitative', title: 'time to first token (ms)', scale: { zero: true } },
          y: { field: 'quality', type: 'quantitative', title: q.title, scale: { zero: false } },
          color: methodColor,
          shape: methodColor,
        },
      },
    ],
  });
}

/** Fig. 16: quality vs recompute ratio per method (fixed methods as single points). */
export function fig16QualityVsRatio(rows: Rows<BlendQualityRow>, p: Provenance, q: QualityAxis = TOP1): Figure {
  const h = head('cacheblend-fig16', 'Quality vs recompute ratio, per method', p,
    '15% is the smallest ratio with negligible quality loss (within 0.01-0.03 of full recompute).');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const cb = nearest(rows.filter((r) => r.method === 'cacheblend'), 0.15);
  const full = rows.find((r) => r.method === 'full-recompute');
  const reuse = rows.find((r) => r.method === 'full-reuse');
  const measured = `cacheblend at ${fmt(cb?.ratio)}: quality ${fmt(cb?.quality)}, KL ${fmt(cb?.kl)} nats; ` +
    `full recompute ${fmt(full?.quality)}; full reuse ${fmt(reuse?.quality)}, KL ${fmt(reuse?.kl)} nats.`;
  const enc = (y: Record<string, unknown>) => ({
    width: WIDTH / 1.4, height: HEIGHT,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'ratio', type: 'quantitative', title: 'recompute ratio (% of context tokens)', axis: { format: '%' } },
      y,
      color: methodColor,
    },
  });
  return makeFigure(h, measured, {
    data: { values: rows.map((r) => ({ ...r, klPlot: Math.max(r.kl ?? NaN, 1e-6) })) },
    hconcat: [
      enc({ field: 'quality', type: 'quantitative', title: q.title, scale: { zero: false } }),
      enc({ field: 'klPlot', type: 'quantitative', title: 'KL vs full prefill (nats, log; 0 drawn at 1e-6)', scale: { type: 'log' } }),
    ],
  });
}

/** QA rows of `kvlab qa eval` (one per method, requested ratio and question kind). */
export interface QaRow {
  method: string;
  requestedRatio: number | null;
  kind: string;
  f1: number;
  em: number;
  ratio: number;
}

/** Fig. 16 on the QA model: F1 vs recompute ratio per method, one panel per question kind. */
export function qaF1VsRatio(rows: Rows<QaRow>, p: Provenance): Figure {
  const h = head('cacheblend-qa-f1', 'Answer F1 vs recompute ratio per method and question kind (multi-document QA)', p,
    'at 15% CacheBlend stays within 0.01-0.03 F1 of full recompute and 0.15-0.35 above full reuse.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const all = rows.filter((r) => r.kind === 'all');
  const f1 = (m: string, r: number | null) => all.find((x) => x.method === m && (r === null || x.requestedRatio === r))?.f1;
  const back = rows.filter((r) => r.kind === 'back-reference');
  const f1Back = (m: string, r: number | null) => back.find((x) => x.method === m && (r === null || x.requestedRatio === r))?.f1;
  const measured = `all kinds: cacheblend 15% F1 ${fmt(f1('cacheblend', 0.15))}, full recompute ${fmt(f1('full-recompute', null))}, ` +
    `full reuse ${fmt(f1('full-reuse', null))}, epic 15% ${fmt(f1('epic', 0.15))}, query-attention 15% ${fmt(f1('query-attention', 0.15))}; ` +
    `back-reference: cacheblend 15% ${fmt(f1Back('cacheblend', 0.15))}, query-attention 15% ${fmt(f1Back('query-attention', 0.15))}, ` +
    `full recompute ${fmt(f1Back('full-recompute', null))}.`;
  return makeFigure(h, measured, {
    data: { values: rows },
    facet: { column: { field: 'kind', type: 'nominal', title: 'question kind' } },
    spec: {
      width: 240, height: 200,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'ratio', type: 'quantitative', title: 'recompute ratio (% of tokens)', axis: { format: '%' } },
        y: { field: 'f1', type: 'quantitative', title: 'answer F1 (0-1)' },
        color: methodColor,
      },
    },
  });
}
