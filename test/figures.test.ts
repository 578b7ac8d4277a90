// Figure specs (src/eval/figures): each compiles with vega-lite and renders to SVG through vega with
// its title, axis titles (with units), legend title and the paper/kvlab caption lines, on small
// synthetic rows; absent rows give a "data missing" panel that keeps the title; the numbers the
// captions print (top share of deviation, TTFT from size and bandwidth) on hand-worked rows.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  benchBlend, benchCodec, benchPrefill, deltaVsRaw, entropyByGrouping, fig12QualityVsTtft, fig16QualityVsRatio, fig2QualityVsChunks,
  fig6AttentionDeviation, fig7DeviationCdf, fig8NeighbourSpearman, layerSensitivity, qualityVsSize, qualityVsTtft, rowsOr, sloViolation,
  topShare, ttftRows, wrap, type BenchPoint, type CodecRow, type Figure,
} from '../src/eval/figures/index.js';
import { compileSpec, specToSvg } from '../src/eval/report/render.js';
import { ArgumentError } from '../src/runtime/errors.js';

const P = { model: 'tiny-test-model', hardware: 'test CPU' };

/** The SVG's text content with entities decoded, so titles can be searched as written. */
function svgText(svg: string): string {
  return svg.replace(/&#39;|&apos;/g, "'").replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

async function expectRendered(f: Figure, texts: string[]): Promise<string> {
  await compileSpec(f.spec);
  const svg = svgText(await specToSvg(f.spec));
  assert.ok(svg.startsWith('<svg'), `${f.id}: not an SVG`);
  for (const t of [f.title, 'model: tiny-test-model', 'Paper:', 'kvlab:', ...texts]) assert.ok(svg.includes(t), `${f.id}: SVG lacks '${t}'`);
  assert.not.ok(f.missing, `${f.id} should have data`);
  return svg;
}

const METHODS = ['full-reuse', 'full-recompute', 'cacheblend', 'random'];
const quality = METHODS.flatMap((method) => [0.05, 0.15, 0.5].map((ratio) => ({
  method, ratio: method === 'full-reuse' ? 0 : method === 'full-recompute' ? 1 : ratio,
  quality: method === 'full-recompute' ? 1 : 0.8 + ratio / 5, kl: method === 'full-recompute' ? 0 : 0.1 - ratio / 10, attnDev: 0.5 - ratio / 2,
})));

test('CacheBlend figures render with titles, units and legends', async () => {
  await expectRendered(fig2QualityVsChunks([1, 2, 3].flatMap((n) => ['full-reuse', 'full-recompute', 'cacheblend'].map((method) =>
    ({ chunks: n, method, quality: method === 'full-reuse' ? 1 - n / 10 : 1 }))), P),
  ['number of context chunks (count)', 'top-1 agreement with full prefill (fraction)', 'method', 'full reuse 0.9 at 1 chunk(s) -> 0.7 at 3']);
  await expectRendered(fig6AttentionDeviation(quality, P), ['recompute ratio (% of context tokens)', 'attention deviation (relative L2)', 'method']);
  const dev = [0, 1].flatMap((layer) => Array.from({ length: 20 }, (_, i) => ({ layer, relDeviation: i === 0 ? 1 : 0.01 })));
  await expectRendered(fig7DeviationCdf(dev, P), ['KV deviation / layer maximum (fraction)', 'fraction of tokens (CDF)', 'layer']);
  await expectRendered(fig8NeighbourSpearman([0, 1, 2].map((layer) => ({ layer, spearman: 0.9 + layer / 100, context: 'c0' })), P),
    ['layer pair (l, l+1)', 'Spearman rank correlation (unitless)', 'mean 0.91']);
  await expectRendered(fig12QualityVsTtft([
    { method: 'full-recompute', ttftMs: 30, quality: 1 }, { method: 'full-reuse', ttftMs: 5, quality: 0.8 },
    { method: 'cacheblend 15%', ttftMs: 10, quality: 0.98 }], P),
  ['time to first token (ms)', 'method', '3x lower']);
  await expectRendered(fig16QualityVsRatio(quality, P), ['recompute ratio (% of context tokens)', 'KL vs full prefill', 'method']);
});

const codecRows: CodecRow[] = [
  { codec: 'cachegen', level: 'medium', bitsPerValue: 2, ratioVsFp16: 8, ratioVsInt8: 4, pplDeltaPct: 1.5, kl: 0.01, top1: 0.97, isDefault: true },
  { codec: 'cachegen', level: 'low', bitsPerValue: 1.2, ratioVsFp16: 16 / 1.2, ratioVsInt8: 8 / 1.2, pplDeltaPct: 4, kl: 0.03, top1: 0.93, isDefault: false },
  { codec: 'int8-token', level: 'default', bitsPerValue: 8, ratioVsFp16: 2, ratioVsInt8: 1, pplDeltaPct: 0.1, kl: 0.001, top1: 0.99, isDefault: true },
];

test('CacheGen figures render with titles, units and legends', async () => {
  await expectRendered(qualityVsSize(codecRows, P), ['stored size (bits per K/V value)', 'perplexity change vs exact KV (%)', 'codec',
    '4x smaller than int8']);
  const s = { contextTokens: 1000, fp16BytesPerToken: 1000, bandwidthsGbps: [1, 10], textPrefillS: 0.5 };
  await expectRendered(qualityVsTtft(codecRows, s, P), ['time to first token (s, log)', 'perplexity change (%)', 'bandwidth', 'text (prefill)']);
  await expectRendered(deltaVsRaw([0, 1].flatMap((layer) => (['K', 'V'] as const).flatMap((kv) => (['raw', 'delta'] as const).flatMap((series) =>
    [0, 1, 2].map((b) => ({ layer, kv, series, binLo: b - 1.5, binHi: b - 0.5, density: series === 'raw' ? 0.3 : 0.5 }))))),
  [{ layer: 0, kv: 'K', rawVariance: 2.6, deltaVariance: 1, varianceRatio: 2.6, channelVarianceRatio: 2.5 }], P),
  ['value (K/V units)', 'density (1/unit)', 'series', 'variance raw / delta 2.6']);
  await expectRendered(layerSensitivity([0, 1, 2].map((group) => ({ group, layers: `${group}-${group}`, bits: 3, kl: 0.1, pplDeltaPct: 30 - 10 * group, top1: 0.9 })), P),
    ['quantized layer group (shallow -> deep)', 'perplexity change vs exact KV (%)', 'quantization', 'layers 0-0 30%']);
  const entropy = (['layer-channel', 'token', 'global'] as const).map((grouping, i) => ({ series: 'delta' as const, grouping,
    bitsPerValue: 2 + i, groups: 4, values: 100 }));
  await expectRendered(entropyByGrouping(entropy, P), ['probability model grouping', 'entropy (bits per value)', 'values coded', 'per (layer, channel)']);
});

test('streaming and benchmark figures render', async () => {
  await expectRendered(sloViolation([
    { policy: 'adaptive', sloViolationRate: 0.05, meanQuality: 0.95, medianTtftS: 0.3 },
    { policy: 'level-high', sloViolationRate: 0.4, meanQuality: 0.99, medianTtftS: 0.6 },
    { policy: 'text', sloViolationRate: 0.9, meanQuality: 1, medianTtftS: 1.2 }], P),
  ['SLO violation rate (% of traces)', 'median TTFT (s)', 'policy', 'adaptive 5% violations']);
  const pt = (bench: string, metric: string, c: Record<string, unknown>, value: number, unit: string, floor: number | null = null,
    ratioToBaseline: number | null = null): BenchPoint => ({ source: `results/${bench}.json`, bench, card: 'Test GPU', date: '2026-01-01',
    metric, unit, value, floor, baseline: null, ratioToBaseline, label: JSON.stringify(c), case: c });
  await expectRendered(benchPrefill([pt('prefill', 'prefill', { tokens: 4096 }, 100, 'ms', 80), pt('transformers (sdpa)', 'prefill', { tokens: 4096 }, 120, 'ms')], P),
    ['context length (tokens)', 'prefill time (ms)', 'system', 'kvlab 100 ms, transformers 120 ms']);
  await expectRendered(benchBlend([pt('blend', 'ttft', { method: 'full-recompute', tier: 'gpu', ratio: 0 }, 90, 'ms'),
    pt('blend', 'ttft', { method: 'cacheblend', tier: 'gpu', ratio: 0.15 }, 30, 'ms', null, 1 / 3)], P),
  ['time to first token (ms)', 'KV tier', '3x lower TTFT']);
  await expectRendered(benchCodec([pt('codec', 'decode', { tokens: 4096 }, 250, 'GB/s of fp16 KV'), pt('codec', 'encode', { tokens: 4096 }, 60, 'GB/s of fp16 KV'),
    pt('lmcache-cachegen', 'decode', { impl: 'lmcache-cachegen', mode: 'default-256', chunkTokens: 256 }, 35, 'GB/s'),
    pt('lmcache-cachegen', 'encode', { impl: 'lmcache-cachegen', mode: 'default-256', chunkTokens: 256 }, 21, 'GB/s')], P),
  ['throughput (GB/s of fp16 KV)', 'operation', 'kvlab cachegen 4096 tok', 'lmcache default-256',
    'codec bench best encode 60, decode 250 GB/s; LMCache best on the same card encode 21, decode 35 GB/s']);
});

test('absent rows give a "data missing" panel that keeps the title and caption', async () => {
  for (const f of [fig6AttentionDeviation({ missing: 'producer X not built' }, P), qualityVsSize(rowsOr([], 'codec eval gave no rows'), P),
    sloViolation({ missing: 'producer X not built' }, P), benchBlend({ missing: 'no GPU JSON' }, P)]) {
    assert.ok(f.missing);
    const svg = svgText(await specToSvg(f.spec));
    assert.ok(svg.includes(f.title) && svg.includes('Paper:'), f.id);
    assert.ok(svg.includes('data missing:'), `${f.id} panel says data missing`);
  }
  assert.ok(qualityVsSize(rowsOr([], 'codec eval gave no rows'), P).measured.includes('codec eval gave no rows'));
  // A benchmark file of another kind: the blend panel still reports the absence.
  assert.ok(benchBlend([], P).missing);
});

test('caption numbers: share of deviation in the top tokens, TTFT from size and bandwidth', () => {
  // Layer 0: one token holds 10 of 19 units; top 10% of 10 tokens = 1 token -> 10/19.
  const rows = [10, 1, 1, 1, 1, 1, 1, 1, 1, 1].map((d) => ({ layer: 0, relDeviation: d / 10 }));
  assert.ok(Math.abs(topShare(rows, 0.1) - 10 / 19) < 1e-12);
  const s = { contextTokens: 1000, fp16BytesPerToken: 2000, bandwidthsGbps: [2], textPrefillS: 0.25, textBytesPerToken: 4, decodeGBps: { cachegen: 1 } };
  const t = ttftRows(codecRows, s);
  const cg = t.find((r) => r.method === 'cachegen medium')!;
  // 2e6 fp16 bytes / 8x = 250000 bytes -> 2e6 bits / 2e9 b/s = 1 ms; decode 2e6 B / 1e9 B/s = 2 ms.
  assert.ok(Math.abs(cg.ttftS - 0.003) < 1e-12, String(cg.ttftS));
  const text = t.find((r) => r.method === 'text (prefill)')!;
  assert.ok(Math.abs(text.ttftS - (0.25 + 32000 / 2e9)) < 1e-12);
  assert.throws(() => ttftRows(codecRows, { ...s, bandwidthsGbps: [0] }), (e: unknown) => e instanceof ArgumentError);
  assert.equal(wrap('aaa bbb ccc', 7), ['aaa bbb', 'ccc']);
});

test.run();
