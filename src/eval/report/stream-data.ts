/**
 * CacheGen's adaptation experiment as `kvlab reproduce` runs it, following the paper's artifact:
 * contexts of 6 chunks of 1500 tokens of a Mistral-7B-shaped model, three cachegen levels whose bytes
 * per chunk (fp16 KV / measured ratio) and quality come from this run's codec eval, per-chunk
 * bandwidth uniform in 0.1-10 Gbps, SLO 0.5 s, text recomputed at the engine's measured prefill
 * speed (results/ benchmark JSON) or the artifact's 0.2 s per chunk, decode at the codec
 * benchmark's measured rate (the chunk length nearest 1500 tokens) or 50 GB/s when results/ has none.
 */
import { PRESETS } from '../../model/presets.js';
import { streamEval, type StreamEvalRow } from '../../stream/eval.js';
import { fp16KvBytes, levelsFromCodecEval } from '../../stream/levels.js';
import type { StreamSetup } from '../../stream/policy.js';
import { uniformTraces } from '../../stream/trace.js';
import type { CodecEvalRow } from '../codec-eval.js';
import type { BenchPoint } from '../figures/benchmarks.js';

export interface StreamExperiment {
  /** Rows of both settings, each with `setting`. */
  rows: (StreamEvalRow & { setting: string })[];
  /** One line for the figure's subtitle: what was simulated, from which numbers. */
  description: string;
}

/** Runs the experiment twice: text at the artifact's 0.2 s per chunk, and at the engine's measured prefill speed (when results/ has it). */
export function streamExperiment(codecRows: readonly CodecEvalRow[], points: readonly BenchPoint[], traces = 100): StreamExperiment {
  const shape = PRESETS['mistral-7b']!;
  const chunks = 6, chunkTokens = 1500;
  const fp16ChunkBytes = fp16KvBytes(shape, chunkTokens);
  const levels = levelsFromCodecEval({ rows: codecRows }, { codec: 'cachegen', fp16ChunkBytes, metric: 'top1', what: 'this run\'s codec eval' });
  const prefill = points.filter((p) => p.bench === 'prefill' && p.metric === 'prefill' && p.unit === 'ms' && Number(p.case.tokens) > 0)
    .sort((a, b) => Number(b.case.tokens) - Number(a.case.tokens) || a.value - b.value)[0];
  const tps = prefill ? Number(prefill.case.tokens) / (prefill.value / 1000) : undefined;
  // The codec bench row measured at the chunk length nearest the experiment's (its unit: "GB/s of fp16 KV").
  const decode = points.filter((p) => p.bench === 'codec' && p.unit.startsWith('GB/s') && /decode/.test(p.metric))
    .sort((a, b) => Math.abs(Number(a.case.tokens) - chunkTokens) - Math.abs(Number(b.case.tokens) - chunkTokens))[0];
  const decodeGBps = decode?.value ?? 50;
  const trs = uniformTraces(traces, chunks, { seed: 1 });
  const settings: [string, number][] = [['text 0.2 s/chunk (artifact)', 0.2]];
  if (tps) settings.push([`text ${(chunkTokens / tps).toFixed(3)} s/chunk (measured prefill, ${prefill!.card})`, chunkTokens / tps]);
  const rows = settings.flatMap(([setting, recomputeS]) => {
    const setup: StreamSetup = {
      chunks, levels, textBytesPerChunk: chunkTokens * 4, recomputeS,
      decodeS: levels.map(() => fp16ChunkBytes / (decodeGBps * 1e9)), sloS: 0.5, initialGbps: 1,
    };
    return streamEval(setup, trs, { metric: 'top1' }).map((r) => ({ ...r, setting }));
  });
  const description = `${traces} traces, ${chunks} x ${chunkTokens}-token chunks, SLO 0.5 s; decode ${decodeGBps.toFixed(0)} GB/s` +
    `${decode ? ` (${decode.card})` : ' (assumed)'}; levels: ${levels.map((l) => l.name).join(', ')}`;
  return { rows, description };
}
