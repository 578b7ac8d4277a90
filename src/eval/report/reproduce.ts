/**
 * `kvlab reproduce` as a library: run each producer (timed; an absent or failing one becomes a
 * "data missing" reason instead of an exception), turn the rows into every figure and table, and
 * write the report. The CLI decides which producers exist and hands them in; notebooks can call
 * buildFigures on rows they made themselves.
 */
import type { CodecEvalRow } from '../codec-eval.js';
import type { Observations } from '../observations.js';
import { benchBlend, benchCodec, benchPrefill, benchProvenance, type BenchPoint } from '../figures/benchmarks.js';
import { fig12QualityVsTtft, fig16QualityVsRatio, fig2QualityVsChunks, fig6AttentionDeviation, fig7DeviationCdf,
  fig8NeighbourSpearman, qaF1VsRatio, type QaRow, type QualityTtftRow } from '../figures/cacheblend.js';
import { deltaVsRaw, entropyByGrouping, layerSensitivity, qualityVsSize, qualityVsTtft, type TtftSetting } from '../figures/cachegen.js';
import { type Figure, type Missing, type Provenance, type Rows } from '../figures/figure.js';
import { sloViolation, type StreamRow } from '../figures/streaming.js';
import type { BlendFigureData } from './blend-data.js';
import type { ReportTable, RunLogEntry } from './html.js';
import type { Results } from './results.js';

export type Produced<T> = T | Missing;

/** Everything the report draws; each part may be missing with a reason. */
export interface ReproduceData {
  /** Model and hardware of the CPU-run producers (this machine). */
  provenance: Provenance;
  blend: Produced<BlendFigureData>;
  codec: Produced<readonly CodecEvalRow[]>;
  observations: Produced<Observations>;
  /** Stream eval rows and a line saying what was simulated. */
  stream: Produced<{ rows: readonly StreamRow[]; description: string }>;
  /** `kvlab qa eval` rows on the QA model (F1 per method, ratio and question kind). */
  qa: Produced<{ rows: readonly QaRow[]; ttft: readonly QualityTtftRow[]; model: string }>;
  /** Rows of the eval grid (`kvlab eval GRID`), shown as a table. */
  grid: Produced<{ name: string; rows: readonly object[] }>;
  results: Results;
}

/** Runs `fn`, timing it into `log`; a throw becomes Missing naming the step and the error. */
export async function produce<T>(step: string, log: RunLogEntry[], fn: () => T | Promise<T>): Promise<Produced<T>> {
  const t0 = performance.now();
  try {
    const v = await fn();
    if (isMissingValue(v)) {
      log.push({ step, status: 'missing', seconds: (performance.now() - t0) / 1000, detail: v.missing });
      return v;
    }
    log.push({ step, status: 'ok', seconds: (performance.now() - t0) / 1000, detail: '' });
    return v;
  } catch (e) {
    const msg = `${(e as Error).name}: ${(e as Error).message}`;
    log.push({ step, status: 'failed', seconds: (performance.now() - t0) / 1000, detail: msg });
    return { missing: `${step} failed (${msg})` };
  }
}

function isMissingValue(v: unknown): v is Missing {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as Missing).missing === 'string';
}

function part<T, U>(p: Produced<T>, pick: (t: T) => Rows<U>): Rows<U> {
  return isMissingValue(p) ? p : pick(p);
}

/** Fp16 KV bytes per token of the Mistral-7B shape (32 layers x K,V x 8 kv heads x 128 x 2 bytes). */
export const MISTRAL7B_FP16_BYTES_PER_TOKEN = 32 * 2 * 8 * 128 * 2;

/**
 * The quality-vs-TTFT setting from results/: a 7B-shaped context, text prefill timed by the engine
 * benchmark (scaled linearly to the context length from the nearest measured length), decode
 * throughput from a codec benchmark when one is there, both from one card (the codec's).
 */
export function ttftSettingFrom(points: readonly BenchPoint[], contextTokens = 4500): TtftSetting | undefined {
  const decodes = points.filter((p) => p.bench === 'codec' && p.unit === 'GB/s' && /decode/.test(p.metric));
  // Prefill from the card the codec was measured on, when there is one (cards' timings do not mix).
  const card = decodes[0]?.card;
  const anyPre = points.filter((p) => p.bench === 'prefill' && p.metric === 'prefill' && typeof p.case.tokens === 'number');
  const sameCard = anyPre.filter((p) => p.card === card);
  const pre = sameCard.length ? sameCard : anyPre;
  if (pre.length === 0) return undefined;
  const near = [...pre].sort((a, b) => Math.abs(Number(a.case.tokens) - contextTokens) - Math.abs(Number(b.case.tokens) - contextTokens))
    .filter((p, _, all) => p.case.tokens === all[0]!.case.tokens).sort((a, b) => a.value - b.value)[0]!;
  const decode: Record<string, number> = {};
  for (const p of decodes) {
    if (card !== undefined && p.card !== card) continue;
    const codec = String(p.case.codec ?? 'cachegen');
    decode[codec] = Math.max(decode[codec] ?? 0, p.value);
  }
  return {
    contextTokens, fp16BytesPerToken: MISTRAL7B_FP16_BYTES_PER_TOKEN, bandwidthsGbps: [0.5, 1, 3, 10],
    textPrefillS: (near.value / 1000) * (contextTokens / Number(near.case.tokens)),
    ...(Object.keys(decode).length ? { decodeGBps: decode } : {}),
  };
}

const none = (why: string): Missing => ({ missing: why });

/** Every figure of the report, in order; absent data gives a "data missing" panel. */
export function buildFigures(d: ReproduceData): Figure[] {
  const p = d.provenance;
  const blendP = { ...p, note: 'datasets/stories260k-blend v1; quality = top-1 agreement with full prefill' };
  const qaP = { ...p, model: isMissingValue(d.qa) ? 'kvlab-qa' : d.qa.model, note: 'datasets/multidoc-qa v1 questions' };
  const devP = { ...p, note: 'datasets/stories260k-blend v1, full reuse vs full prefill' };
  const obsP = { ...p, note: 'datasets/stories260k-codec v1' };
  const bench = d.results.points;
  const gpuModel = 'random-initialised Mistral-7B shape';
  const benchOr = (b: string, why: string): Rows<BenchPoint> => {
    const pts = bench.filter((q) => q.bench === b || (b === 'prefill' && q.bench.startsWith('transformers')) ||
      (b === 'codec' && q.bench === 'lmcache-cachegen'));
    return pts.length ? pts : none(why);
  };
  const setting = ttftSettingFrom(bench);
  const ttftP = {
    model: `${p.model} quality; ${gpuModel} sizes and timing`,
    hardware: `${p.hardware} (quality); ${bench.find((q) => q.bench === 'prefill')?.card ?? 'no GPU results'} (prefill${setting?.decodeGBps ? ', decode' : ''})`,
    note: `${setting?.contextTokens ?? '?'}-token context; TTFT = bytes x 8 / bandwidth + decode, text = prefill`,
  };
  const pts = (b: string) => bench.filter((q) => q.bench === b);
  return [
    fig2QualityVsChunks(part(d.blend, (b) => b.chunks), blendP),
    fig6AttentionDeviation(part(d.blend, (b) => b.quality), { ...p, note: 'datasets/stories260k-blend v1' }),
    fig7DeviationCdf(part(d.blend, (b) => b.deviation), devP),
    fig8NeighbourSpearman(part(d.blend, (b) => b.spearman), devP),
    fig12QualityVsTtft(part(d.blend, (b) => b.ttft), { ...blendP, note: `${blendP.note}; TTFT on this machine, chunk KV in memory` }),
    fig16QualityVsRatio(part(d.blend, (b) => b.quality), blendP),
    fig12QualityVsTtft(part(d.qa, (q) => q.ttft), { ...qaP, note: `${qaP.note}; TTFT on this machine, chunk KV in memory` },
      { title: 'answer F1, all question kinds (0-1)' }, 'cacheblend-fig12-qa'),
    qaF1VsRatio(part(d.qa, (q) => q.rows), qaP),
    qualityVsSize(part(d.codec, (r) => r), { ...p, note: 'datasets/stories260k-codec v1' }),
    qualityVsTtft(part(d.codec, (r) => r), setting, ttftP),
    deltaVsRaw(part(d.observations, (o) => o.distribution), part(d.observations, (o) => o.deltaVariance), obsP),
    layerSensitivity(part(d.observations, (o) => o.sensitivity), obsP),
    entropyByGrouping(part(d.observations, (o) => o.entropy), obsP),
    sloViolation(part(d.stream, (r) => r.rows), { model: `${gpuModel} (sizes); ${p.model} (level quality)`, hardware: 'simulated network',
      note: isMissingValue(d.stream) ? 'bandwidth traces uniform 0.1-10 Gbps per chunk' : d.stream.description },
    'mean quality (top-1 vs exact KV, fraction)'),
    benchPrefill(benchOr('prefill', 'no `kvlab bench prefill` JSON in results/'), benchProvenance(pts('prefill'), gpuModel)),
    benchBlend(benchOr('blend', 'no `kvlab blend bench` JSON in results/ (GPU run pending)'), benchProvenance(pts('blend'), gpuModel)),
    benchCodec(benchOr('codec', 'no `kvlab bench codec` or LMCache JSON in results/ (GPU run pending)'),
      benchProvenance([...pts('codec'), ...pts('lmcache-cachegen')], '7B-shaped KV')),
  ];
}

/** The tables behind the figures (rows as measured), plus the results/ inventory. */
export function buildTables(d: ReproduceData): ReportTable[] {
  const t: ReportTable[] = [];
  if (!isMissingValue(d.blend)) {
    t.push({ family: 'cacheblend', title: 'blend eval: every method at every ratio vs full prefill', rows: d.blend.evalRows,
      note: 'kl: mean KL(P_exact || P_method) in nats; pplDeltaPct: perplexity change in %; top1: agreement with full prefill; attnDev: relative L2 of the query\'s final hidden states' });
    t.push({ family: 'cacheblend', title: 'TTFT on this machine (ms, median) beside quality', rows: d.blend.ttft });
  }
  if (!isMissingValue(d.codec)) t.push({ family: 'cachegen', title: 'codec eval: every codec and level', rows: d.codec });
  if (!isMissingValue(d.observations)) {
    t.push({ family: 'cachegen', title: 'observation 1: variance of raw values vs deltas', rows: d.observations.deltaVariance });
    t.push({ family: 'cachegen', title: 'observation 2: layer-group sensitivity', rows: d.observations.sensitivity });
    t.push({ family: 'cachegen', title: 'observation 3: entropy by grouping', rows: d.observations.entropy });
  }
  if (!isMissingValue(d.stream)) t.push({ family: 'streaming', title: 'stream eval', rows: d.stream.rows, note: d.stream.description });
  if (!isMissingValue(d.qa)) t.push({ family: 'cacheblend', title: `QA eval on ${d.qa.model}: EM and F1 per method, ratio and question kind`, rows: d.qa.rows });
  if (!isMissingValue(d.grid)) t.push({ family: 'cacheblend', title: `eval grid '${d.grid.name}' rows`, rows: d.grid.rows });
  t.push({ family: 'benchmarks', title: 'benchmark rows from results/', rows: d.results.points.map((p) => ({
    source: p.source, card: p.card, bench: p.bench, case: p.label, metric: p.metric, value: p.value, unit: p.unit,
    floor: p.floor, baseline: p.baseline, ratioToBaseline: p.ratioToBaseline })) });
  t.push({ family: 'run', title: 'files in results/', rows: d.results.files.map((f) => ({ ...f, problem: f.problem ?? '' })) });
  return t;
}
