/**
 * Figures over GPU benchmark JSON (DESIGN.md "Benchmark JSON") committed under results/: engine
 * prefill against transformers and the FLOP floor, CacheBlend TTFT per method and tier, codec
 * throughput. Rows are BenchPoints: one benchmark row flattened, with the file it came from.
 */
import { DEFAULT_PREFETCH } from '../../cacheblend/prefetch.js';
import { fmt, HEIGHT, isMissing, makeFigure, missingFigure, WIDTH, type Figure, type Provenance, type Rows } from './figure.js';

export interface BenchPoint {
  /** The file the row came from (e.g. 'results/bench-prefill-mistral7b-h100.json'). */
  source: string;
  bench: string;
  card: string;
  date: string;
  metric: string;
  unit: string;
  value: number;
  floor: number | null;
  baseline: string | null;
  ratioToBaseline: number | null;
  /** The case as 'k=v k=v', for axes and tables. */
  label: string;
  case: Record<string, unknown>;
}

const head = (id: string, title: string, provenance: Provenance, claim: string) =>
  ({ id, family: 'benchmarks' as const, title, provenance, claim });

/** Provenance of a set of points: the card(s) and dates they were measured on. */
export function benchProvenance(points: readonly BenchPoint[], model: string): Provenance {
  const cards = [...new Set(points.map((p) => p.card))].join(', ');
  const dates = [...new Set(points.map((p) => p.date.slice(0, 10)))].join(', ');
  return { model, hardware: cards || 'unknown', note: `measured ${dates || 'n/a'} (results/)` };
}

/** Engine prefill time by context length: each kvlab result file, transformers, the FLOP floor. */
export function benchPrefill(points: Rows<BenchPoint>, p: Provenance): Figure {
  const h = head('bench-prefill', 'Prefill time by context length: kvlab vs transformers (sdpa) vs the FLOP floor', p,
    '(no paper claim) the engine under both papers should prefill no slower than transformers on the same card, ' +
    'near the FLOP floor (CacheBlend counts TTFT against full prefill).');
  if (isMissing(points)) return missingFigure(h, points.missing);
  const rows: { tokens: number; system: string; ms: number; card: string }[] = [];
  for (const q of points) {
    if (q.metric !== 'prefill' || typeof q.case.tokens !== 'number') continue;
    rows.push({ tokens: q.case.tokens, system: q.bench === 'prefill' ? `kvlab (${short(q.source)})` : q.bench, ms: q.value, card: q.card });
    // Each run has its own floor (it divides by the GEMM rate measured in that run).
    if (q.floor !== null && q.bench === 'prefill') rows.push({ tokens: q.case.tokens, system: `FLOP floor (${short(q.source)})`, ms: q.floor, card: q.card });
  }
  if (rows.length === 0) return missingFigure(h, 'no prefill rows in results/');
  // The summary compares kvlab and transformers on each card apart (timings of two cards do not mix).
  const best = (c: string, t: number, pred: (s: string) => boolean) =>
    Math.min(...rows.filter((r) => r.card === c && r.tokens === t && pred(r.system)).map((r) => r.ms));
  const cards = [...new Set(rows.map((r) => r.card))];
  const ts = [...new Set(rows.map((r) => r.tokens))].sort((a, b) => a - b);
  const measured = cards.map((c) => `${c}: ` + ts.map((t) => `${t} tokens: kvlab ${fmt(best(c, t, (s) => s.startsWith('kvlab')))} ms, ` +
    `transformers ${fmt(best(c, t, (s) => s.startsWith('transformers')))} ms`).join('; ')).join('. ') + '.';
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, len: `${r.tokens} tokens` })) },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'len', type: 'nominal', title: 'context length (tokens)', sort: { field: 'tokens' } },
      xOffset: { field: 'system', type: 'nominal' },
      y: { field: 'ms', type: 'quantitative', title: 'prefill time (ms)' },
      color: { field: 'system', type: 'nominal', title: 'system' },
    },
  });
}

function short(source: string): string {
  return source.replace(/^.*\//, '').replace(/\.jsonl?$/, '');
}

/** CacheBlend TTFT per method (and ratio) and storage tier from `kvlab blend bench`. */
export function benchBlend(points: Rows<BenchPoint>, p: Provenance): Figure {
  const h = head('bench-blend', 'Time to first token per reuse method and KV storage tier (kvlab blend bench)', p,
    'CacheBlend: TTFT 2.2-3.3x lower than full recompute (Mistral-7B, Yi-34B, Llama-70B; 6 retrieved 512-token chunks).');
  if (isMissing(points)) return missingFigure(h, points.missing);
  // The CPU tier at the pipelined fusor's default depth only (`--prefetch` sweeps add rows per depth)
  const rows = points.filter((q) => q.bench === 'blend' && q.metric === 'ttft' && (q.case.prefetch === undefined || q.case.prefetch === DEFAULT_PREFETCH)).map((q) => ({
    method: q.case.method === 'cacheblend' || q.case.method === 'epic' || q.case.method === 'query-attention' ? `${q.case.method} ${Math.round(100 * Number(q.case.ratio))}%` : String(q.case.method),
    tier: String(q.case.tier), ms: q.value, ratioToBaseline: q.ratioToBaseline,
  }));
  if (rows.length === 0) return missingFigure(h, 'no `kvlab blend bench` JSON in results/ (GPU run pending)');
  const cb = rows.filter((r) => r.method === 'cacheblend 15%' && r.ratioToBaseline);
  const measured = cb.length
    ? `cacheblend 15%: ${cb.map((r) => `${r.tier} tier ${fmt(1 / r.ratioToBaseline!)}x lower TTFT than full recompute (${fmt(r.ms)} ms)`).join('; ')}.`
    : 'no cacheblend 15% row.';
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'method', type: 'nominal', title: 'method', sort: null, axis: { labelAngle: -30 } },
      xOffset: { field: 'tier', type: 'nominal' },
      y: { field: 'ms', type: 'quantitative', title: 'time to first token (ms)' },
      color: { field: 'tier', type: 'nominal', title: 'KV tier' },
    },
  });
}

const CODEC_BENCHES = ['codec', 'lmcache-cachegen'];

/** A short label (axis labels longer than ~25 characters get cut): who, and the mode or chunk length. */
function codecLabel(q: BenchPoint): string {
  const c = q.case;
  const who = q.bench === 'codec' ? `kvlab ${c.codec ?? 'cachegen'}` : String(c.impl ?? q.bench).replace(/-cachegen$/, '');
  const chunk = c.chunkTokens ?? c.tokens;
  return `${who} ${c.mode ?? (chunk !== undefined ? `${chunk} tok` : '')}`.trim();
}

/** Codec encode/decode throughput on 7B-shaped KV: kvlab's `bench codec` and LMCache's kernels (results/). */
export function benchCodec(points: Rows<BenchPoint>, p: Provenance): Figure {
  const h = head('bench-codec', 'CacheGen codec throughput on 7B-shaped KV: kvlab vs LMCache\'s CUDA kernels', p,
    'LMCache\'s CacheGen CUDA kernels on an H200: encode 31-36 GB/s, decode 55-60 GB/s (issue target for kvlab on an H100: ' +
    'decode >= 200, encode >= 50 GB/s, >= 2x LMCache on the same card).');
  if (isMissing(points)) return missingFigure(h, points.missing);
  // kvlab's rows say 'GB/s of fp16 KV', LMCache's driver 'GB/s': the same measure
  // One bar per implementation, chunking and operation: the default level only (a levels sweep is about
  // size and error), and the first file (in results/ order) where two files measured the same case.
  const seen = new Set<string>();
  const rows = points.filter((q) => CODEC_BENCHES.includes(q.bench) && q.unit.startsWith('GB/s') && /^(encode|decode)$/.test(q.metric)
      && (q.case.level === undefined || q.case.level === 'default'))
    .map((q) => ({ metric: q.metric, label: codecLabel(q), value: q.value, kvlab: q.bench === 'codec' }))
    .filter((r) => !seen.has(`${r.label}|${r.metric}`) && seen.add(`${r.label}|${r.metric}`));
  if (rows.length === 0) return missingFigure(h, 'no `kvlab bench codec` or LMCache baseline JSON in results/');
  const best = (m: string, kvlab: boolean) => Math.max(...rows.filter((r) => r.metric === m && r.kvlab === kvlab).map((r) => r.value));
  const part = (kvlab: boolean) => rows.some((r) => r.kvlab === kvlab)
    ? `encode ${fmt(best('encode', kvlab))}, decode ${fmt(best('decode', kvlab))} GB/s` : 'no JSON in results/ yet';
  const measured = `codec bench best ${part(true)}; LMCache best on the same card ${part(false)}.`;
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows },
    mark: { type: 'bar' },
    encoding: {
      y: { field: 'label', type: 'nominal', title: 'implementation and chunking' },
      yOffset: { field: 'metric', type: 'nominal' },
      x: { field: 'value', type: 'quantitative', title: 'throughput (GB/s of fp16 KV)' },
      color: { field: 'metric', type: 'nominal', title: 'operation' },
    },
  });
}
