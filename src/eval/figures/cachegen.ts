/**
 * CacheGen's figures (Liu et al., SIGCOMM 2024) over kvlab's rows:
 *   quality vs size        every codec x level of `kvlab codec eval` (rows: CodecRow)
 *   quality vs TTFT        the same rows turned into time to first token at several bandwidths:
 *                          TTFT = stored bytes x 8 / bandwidth + decode time; text sends the tokens
 *                          and prefills them (ttftRows below)
 *   observations           delta vs raw value distributions, per-layer-group sensitivity, entropy
 *                          by grouping (rows of cachegenObservations, src/eval/observations.ts)
 */
import { ArgumentError } from '../../runtime/errors.js';
import type { DeltaVarianceRow, DistributionRow, EntropyRow, SensitivityRow } from '../observations.js';
import type { CodecEvalRow } from '../codec-eval.js';
import { fmt, HEIGHT, isMissing, makeFigure, missingFigure, WIDTH, type Figure, type Provenance, type Rows } from './figure.js';

/** One codec at one level, as `kvlab codec eval --json` writes it (the columns the figures read). */
export type CodecRow = Pick<CodecEvalRow, 'codec' | 'bitsPerValue' | 'ratioVsFp16' | 'ratioVsInt8' | 'pplDeltaPct' | 'kl' | 'top1' | 'isDefault'>
  & { level: string | number };

const head = (id: string, title: string, provenance: Provenance, claim: string) =>
  ({ id, family: 'cachegen' as const, title, provenance, claim });

const label = (r: CodecRow) => `${r.codec}`;

/** Quality (perplexity change) vs stored size for every codec and level. */
export function qualityVsSize(rows: Rows<CodecRow>, p: Provenance): Figure {
  const h = head('cachegen-quality-size', 'Quality vs KV size: CacheGen levels against quantization baselines', p,
    'KV 3.5-4.3x smaller than 8-bit quantization at similar quality (under 2% accuracy loss).');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const def = rows.find((r) => r.isDefault && r.codec === 'cachegen') ?? rows.find((r) => r.isDefault);
  const measured = def
    ? `${def.codec} at its default level '${def.level}': ${fmt(def.bitsPerValue)} bits/value, ${fmt(def.ratioVsFp16)}x smaller than fp16, ` +
      `${fmt(def.ratioVsInt8)}x smaller than int8, perplexity change ${fmt(def.pplDeltaPct)}%.`
    : 'no row is marked isDefault.';
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, method: label(r), levelText: String(r.level) })) },
    layer: [
      {
        mark: { type: 'line', point: { filled: true, size: 60 } },
        encoding: {
          x: { field: 'bitsPerValue', type: 'quantitative', title: 'stored size (bits per K/V value)', scale: { zero: true } },
          y: { field: 'pplDeltaPct', type: 'quantitative', title: 'perplexity change vs exact KV (%)' },
          color: { field: 'method', type: 'nominal', title: 'codec' },
          order: { field: 'bitsPerValue' },
          tooltip: [{ field: 'codec' }, { field: 'level' }, { field: 'ratioVsFp16' }],
        },
      },
    ],
  });
}

/** How to turn stored sizes into time to first token. */
export interface TtftSetting {
  /** Context length in tokens and its fp16 KV size per token (bytes) on the model being served. */
  contextTokens: number;
  fp16BytesPerToken: number;
  bandwidthsGbps: readonly number[];
  /** Decode throughput in GB/s of fp16 KV per codec (absent: decode time not counted). */
  decodeGBps?: Readonly<Record<string, number>>;
  /** Prefill time of the whole context from text, in seconds (the text baseline). */
  textPrefillS: number;
  /** Bytes per token when sending text (token ids or UTF-8). */
  textBytesPerToken?: number;
}

export interface TtftRow {
  method: string;
  bandwidthGbps: number;
  ttftS: number;
  pplDeltaPct: number;
}

/** TTFT of each codec row and of text at each bandwidth (seconds). */
export function ttftRows(rows: readonly CodecRow[], s: TtftSetting): TtftRow[] {
  if (!(s.contextTokens > 0) || !(s.fp16BytesPerToken > 0) || s.bandwidthsGbps.some((b) => !(b > 0)))
    throw new ArgumentError('ttftRows: contextTokens, fp16BytesPerToken and every bandwidth must be > 0');
  const fp16Bytes = s.contextTokens * s.fp16BytesPerToken;
  const out: TtftRow[] = [];
  for (const bw of s.bandwidthsGbps) {
    for (const r of rows) {
      const bytes = fp16Bytes / r.ratioVsFp16;
      const dec = s.decodeGBps?.[r.codec];
      const decodeS = dec ? fp16Bytes / (dec * 1e9) : 0;
      out.push({ method: `${r.codec} ${r.level}`, bandwidthGbps: bw, ttftS: (bytes * 8) / (bw * 1e9) + decodeS, pplDeltaPct: r.pplDeltaPct });
    }
    const textBytes = s.contextTokens * (s.textBytesPerToken ?? 4);
    out.push({ method: 'text (prefill)', bandwidthGbps: bw, ttftS: (textBytes * 8) / (bw * 1e9) + s.textPrefillS, pplDeltaPct: 0 });
  }
  return out;
}

/** Quality vs TTFT across bandwidths (one panel per bandwidth). */
export function qualityVsTtft(rows: Rows<CodecRow>, s: TtftSetting | undefined, p: Provenance): Figure {
  const h = head('cachegen-quality-ttft', 'Quality vs time to first token across bandwidths: CacheGen vs quantization vs text', p,
    'TTFT 3.1-4.7x lower than sending text; context-loading delay 3.2-3.7x lower than 8-bit quantization at similar quality.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  if (!s) return missingFigure(h, 'no prefill benchmark to time the text baseline (results/bench-prefill*.json)');
  const t = ttftRows(rows, s);
  const def = rows.find((r) => r.isDefault && r.codec === 'cachegen') ?? rows.find((r) => r.isDefault);
  const int8 = rows.filter((r) => /int8/.test(r.codec)).sort((a, b) => a.pplDeltaPct - b.pplDeltaPct)[0];
  const mid = s.bandwidthsGbps[Math.floor(s.bandwidthsGbps.length / 2)]!;
  const at = (m: string) => t.find((r) => r.method === m && r.bandwidthGbps === mid)?.ttftS;
  const dTtft = def ? at(`${def.codec} ${def.level}`) : undefined, text = at('text (prefill)');
  const i8 = int8 ? at(`${int8.codec} ${int8.level}`) : undefined;
  const measured = dTtft !== undefined
    ? `at ${mid} Gbps: default level ${fmt(dTtft)} s vs text ${fmt(text)} s (${fmt((text ?? NaN) / dTtft)}x) ` +
      `vs ${int8 ? `${int8.codec} ${fmt(i8)} s (${fmt((i8 ?? NaN) / dTtft)}x)` : 'no int8 row'}` +
      `${s.decodeGBps ? '' : '; decode time not counted (no codec bench JSON)'}.`
    : 'no default level in the rows.';
  return makeFigure(h, measured, {
    data: { values: t.map((r) => ({ ...r, bw: `${r.bandwidthGbps} Gbps` })) },
    facet: { column: { field: 'bw', type: 'ordinal', title: 'bandwidth', sort: { field: 'bandwidthGbps' } } },
    spec: {
      width: 200, height: 220,
      mark: { type: 'point', filled: true, size: 60 },
      encoding: {
        x: { field: 'ttftS', type: 'quantitative', title: 'time to first token (s, log)', scale: { type: 'log' } },
        y: { field: 'pplDeltaPct', type: 'quantitative', title: 'perplexity change (%)' },
        color: { field: 'method', type: 'nominal', title: 'method' },
        shape: { field: 'method', type: 'nominal', title: 'method' },
      },
    },
  });
}

/** Up to three layers to show: first, middle, last. */
function pickLayers(layers: readonly number[]): number[] {
  const u = [...new Set(layers)].sort((a, b) => a - b);
  return [...new Set([u[0]!, u[Math.floor(u.length / 2)]!, u[u.length - 1]!])];
}

/** Observation 1: delta vs raw value distributions (token locality). */
export function deltaVsRaw(rows: Rows<DistributionRow>, variance: Rows<DeltaVarianceRow>, p: Provenance): Figure {
  const h = head('cachegen-obs-delta', 'Observation 1: distribution of K/V values, raw vs delta against the group anchor', p,
    'deltas against a nearby token have 2.4-2.9x lower variance than raw values.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const ratios = isMissing(variance) ? [] : variance.map((r) => r.varianceRatio);
  const measured = ratios.length
    ? `variance raw / delta ${fmt(ratios.reduce((a, b) => a + b, 0) / ratios.length)} on average over ${ratios.length} (layer, K|V), ` +
      `range ${fmt(Math.min(...ratios))}-${fmt(Math.max(...ratios))}.`
    : 'no variance rows.';
  const layers = pickLayers(rows.map((r) => r.layer));
  return makeFigure(h, measured, {
    data: { values: rows.filter((r) => layers.includes(r.layer)).map((r) => ({ ...r, mid: (r.binLo + r.binHi) / 2 })) },
    facet: {
      row: { field: 'kv', type: 'nominal', title: 'K or V' },
      column: { field: 'layer', type: 'ordinal', title: 'layer' },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    spec: {
      width: 170, height: 110,
      mark: { type: 'line', interpolate: 'step' },
      encoding: {
        x: { field: 'mid', type: 'quantitative', title: 'value (K/V units)' },
        y: { field: 'density', type: 'quantitative', title: 'density (1/unit)' },
        color: { field: 'series', type: 'nominal', title: 'series' },
      },
    },
  });
}

/** Observation 2: quality loss when one layer group at a time is quantized coarsely. */
export function layerSensitivity(rows: Rows<SensitivityRow>, p: Provenance): Figure {
  const h = head('cachegen-obs-layers', 'Observation 2: quality loss from coarsely quantizing one third of the layers', p,
    'output quality is far more sensitive to loss in shallow layers than in deep ones.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const minBits = Math.min(...rows.map((r) => r.bits));
  const s = rows.filter((r) => r.bits === minBits).sort((a, b) => a.group - b.group);
  const measured = `at ${minBits} bits, perplexity change: ${s.map((r) => `layers ${r.layers} ${fmt(r.pplDeltaPct)}%`).join(', ')}.`;
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, groupLabel: `layers ${r.layers}`, bitsLabel: `${r.bits} bits` })) },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'groupLabel', type: 'ordinal', title: 'quantized layer group (shallow -> deep)', sort: { field: 'group' } },
      xOffset: { field: 'bitsLabel', type: 'nominal', sort: { field: 'bits' } },
      y: { field: 'pplDeltaPct', type: 'quantitative', title: 'perplexity change vs exact KV (%)' },
      color: { field: 'bitsLabel', type: 'nominal', title: 'quantization', sort: { field: 'bits' } },
    },
  });
}

const GROUPING_NAMES: Record<string, string> = { 'layer-channel': 'per (layer, channel)', token: 'per token', global: 'global' };

/** Observation 3: symbol entropy under different probability-model groupings. */
export function entropyByGrouping(rows: Rows<EntropyRow>, p: Provenance): Figure {
  const h = head('cachegen-obs-entropy', 'Observation 3: entropy of quantized KV by probability-model grouping', p,
    'one probability model per (layer, channel) gives much lower entropy than one per token position or one global model.');
  if (isMissing(rows)) return missingFigure(h, rows.missing);
  const measured = `bits per value: ${rows.map((r) => `${r.series} ${GROUPING_NAMES[r.grouping] ?? r.grouping} ${fmt(r.bitsPerValue)}`).join(', ')}.`;
  return makeFigure(h, measured, {
    width: WIDTH, height: HEIGHT,
    data: { values: rows.map((r) => ({ ...r, groupingLabel: GROUPING_NAMES[r.grouping] ?? r.grouping })) },
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'groupingLabel', type: 'nominal', title: 'probability model grouping', sort: ['per (layer, channel)', 'per token', 'global'] },
      xOffset: { field: 'series', type: 'nominal' },
      y: { field: 'bitsPerValue', type: 'quantitative', title: 'entropy (bits per value)' },
      color: { field: 'series', type: 'nominal', title: 'values coded' },
    },
  });
}
