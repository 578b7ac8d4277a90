import { readFileSync } from 'node:fs';
import type { ModelConfig } from '../../model/config.js';
import { hfConfig } from '../../model/hf.js';
import { PRESETS } from '../../model/presets.js';
import { ArgumentError, FormatError } from '../../runtime/errors.js';
import { fp16KvBytes, levelsFromCodecEval, type QualityMetric } from '../../stream/levels.js';
import { allPolicies, loopbackCheck, streamEval } from '../../stream/eval.js';
import type { StreamSetup } from '../../stream/policy.js';
import { parseTrace, uniformTraces, type BandwidthTrace } from '../../stream/trace.js';
import { num, str, type Command, type Values } from '../command.js';

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
}

function modelShape(name: string): ModelConfig {
  const preset = PRESETS[name];
  if (preset) return preset;
  if (name.endsWith('.json')) {
    const { config, bosId, eosId } = hfConfig(readJson(name) as Record<string, unknown>, name);
    return { ...config, bosId: bosId ?? 1, eosId: eosId ?? 2 };
  }
  throw new ArgumentError(`--model: '${name}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor a config.json`);
}

/** Prefill tokens/s from `kvlab bench prefill --json`: the row with the most tokens. */
function prefillTps(path: string): number {
  const rows = ((readJson(path) as { rows?: { case?: { tokens?: number }; metric?: string; value?: number; unit?: string }[] }).rows ?? [])
    .filter((r) => r.metric === 'prefill' && r.unit === 'ms' && (r.case?.tokens ?? 0) > 0 && (r.value ?? 0) > 0);
  if (!rows.length) throw new FormatError(`${path}: no prefill rows (metric 'prefill', unit 'ms') in this benchmark JSON`);
  const r = rows.reduce((a, b) => (b.case!.tokens! > a.case!.tokens! ? b : a));
  return r.case!.tokens! / (r.value! / 1000);
}

function positive(values: Values, name: string): number {
  const v = num(values, name, 'stream')!;
  if (!(v > 0)) throw new ArgumentError(`kvlab stream: --${name} must be > 0 but is ${v}`);
  return v;
}

export const streamCommand: Command = {
  name: 'stream',
  positionals: 'eval',
  summary: 'CacheGen adaptive streaming: `stream eval` (SLO violations and quality of adaptive vs fixed levels vs text).',
  description: 'Contexts of --chunks chunks of --chunk-tokens tokens of a --model-shaped KV; each level sends\n' +
    'fp16 KV bytes / its ratioVsFp16 per chunk, with its quality, both read from --levels (the JSON of\n' +
    '`kvlab codec eval --json`, rows of --codec). Traces: per-chunk bandwidth uniform in 0.1-10 Gbps\n' +
    '(seeded), or one --trace file. Text costs --text-s per chunk to recompute, or chunk-tokens / the\n' +
    'prefill speed (--prefill-tps, or --prefill-json from `kvlab bench prefill --json`).\n' +
    '--loopback replays the first --loopback-traces traces over loopback TCP through a token bucket and\n' +
    'compares the median TTFT with the simulator.',
  options: {
    levels: { type: 'string', value: 'FILE', help: 'codec eval JSON (required)' },
    codec: { type: 'string', value: 'NAME', help: 'codec whose rows are the levels', default: 'cachegen' },
    tables: { type: 'string', value: 'profile|shipped', help: 'level rows measured with a per-model profile or with tables in every chunk (default: profile where the JSON has such rows)' },
    quality: { type: 'string', value: 'top1|kl|pplDeltaPct', help: 'quality metric of each level', default: 'top1' },
    model: { type: 'string', value: 'PRESET|CONFIG', help: 'model shape for the fp16 KV size', default: 'mistral-7b' },
    chunks: { type: 'string', value: 'N', help: 'chunks per context', default: '6' },
    'chunk-tokens': { type: 'string', value: 'N', help: 'tokens per chunk', default: '1500' },
    traces: { type: 'string', value: 'N', help: 'random traces', default: '100' },
    seed: { type: 'string', value: 'N', help: 'trace seed', default: '1' },
    trace: { type: 'string', value: 'FILE', help: 'one bandwidth trace file instead of random traces' },
    slo: { type: 'string', value: 'S', help: 'TTFT SLO in seconds', default: '0.5' },
    'text-s': { type: 'string', value: 'S', help: 'seconds to recompute one chunk from text', default: '0.2' },
    'prefill-tps': { type: 'string', value: 'N', help: 'measured prefill speed (tokens/s); overrides --text-s' },
    'prefill-json': { type: 'string', value: 'FILE', help: '`kvlab bench prefill --json` output; overrides --text-s' },
    'decode-gbps': { type: 'string', value: 'GB/S', help: 'decode speed in GB/s of fp16 KV produced (default: LMCache\'s CacheGen pipeline on an H100, results/lmcache-cachegen-h100.json)', default: '35' },
    'initial-gbps': { type: 'string', value: 'GBPS', help: 'throughput assumed for the first chunk', default: '1' },
    loopback: { type: 'boolean', help: 'also check the simulator against loopback TCP' },
    'loopback-traces': { type: 'string', value: 'N', help: 'traces replayed over loopback', default: '20' },
    'loopback-scale': { type: 'string', value: 'F', help: 'bytes and rates scaled by F over loopback', default: '0.01' },
    json: { type: 'boolean', help: 'print JSON ({"experiment", "levels", "rows", "loopback"})' },
  },
  async run(values, pos, io) {
    if (pos[0] !== 'eval') throw new ArgumentError(`kvlab stream: unknown subcommand '${pos[0] ?? ''}' (known: eval)`);
    const levelsPath = str(values, 'levels');
    if (!levelsPath) throw new ArgumentError('kvlab stream eval: --levels FILE is required (the output of `kvlab codec eval --json`)');
    const metric = str(values, 'quality') as QualityMetric;
    if (!['top1', 'kl', 'pplDeltaPct'].includes(metric)) throw new ArgumentError(`--quality: expected top1, kl or pplDeltaPct, not ${metric}`);
    const shape = modelShape(str(values, 'model')!);
    const chunks = positive(values, 'chunks'), chunkTokens = positive(values, 'chunk-tokens');
    const fp16ChunkBytes = fp16KvBytes(shape, chunkTokens);
    const tables = str(values, 'tables');
    if (tables !== undefined && tables !== 'profile' && tables !== 'shipped') throw new ArgumentError(`--tables must be profile or shipped, got '${tables}'`);
    const levels = levelsFromCodecEval(readJson(levelsPath), { codec: str(values, 'codec'), fp16ChunkBytes, metric, what: levelsPath, ...(tables ? { tables } : {}) });
    const tpsFlag = num(values, 'prefill-tps', 'stream');
    const jsonPath = str(values, 'prefill-json');
    const tps = tpsFlag ?? (jsonPath ? prefillTps(jsonPath) : undefined);
    if (tps !== undefined && !(tps > 0)) throw new ArgumentError(`--prefill-tps must be > 0 but is ${tps}`);
    const recomputeS = tps !== undefined ? chunkTokens / tps : positive(values, 'text-s');
    const decodeGBps = positive(values, 'decode-gbps');
    const setup: StreamSetup = {
      chunks, levels, textBytesPerChunk: chunkTokens * 4, recomputeS,
      decodeS: levels.map(() => fp16ChunkBytes / (decodeGBps * 1e9)),
      sloS: positive(values, 'slo'), initialGbps: positive(values, 'initial-gbps'),
    };
    const tracePath = str(values, 'trace');
    const traces: BandwidthTrace[] = tracePath ? [parseTrace(readFileSync(tracePath, 'utf8'), tracePath)]
      : uniformTraces(positive(values, 'traces'), chunks, { seed: num(values, 'seed', 'stream')! });
    const rows = streamEval(setup, traces, { metric });
    const experiment = {
      model: str(values, 'model'), chunks, chunkTokens, fp16ChunkBytes, sloS: setup.sloS, traces: traces.length,
      trace: tracePath ?? `per-chunk uniform 0.1-10 Gbps, seed ${num(values, 'seed', 'stream')}`, recomputeS,
      recomputeFrom: tps !== undefined ? `prefill ${tps.toFixed(0)} tokens/s` : 'fixed per chunk', decodeGBps,
      initialGbps: setup.initialGbps, qualityMetric: metric, levelsFile: levelsPath, network: 'simulated (bytes*8/bandwidth)',
    };
    let loopback;
    if (values.loopback) {
      const n = Math.min(traces.length, positive(values, 'loopback-traces'));
      loopback = await loopbackCheck(setup, traces.slice(0, n), allPolicies(setup), {
        byteScale: positive(values, 'loopback-scale'),
        onProgress: values.json ? undefined : (d, t) => io.err(`  loopback ${d}/${t}`),
      });
    }
    if (values.json) {
      io.out(JSON.stringify({ experiment, levels, rows, ...(loopback ? { loopback } : {}) }, null, 1));
      return 0;
    }
    io.out(`${traces.length} traces, ${chunks} x ${chunkTokens}-token chunks (${(fp16ChunkBytes / 1e6).toFixed(1)} MB fp16 each), SLO ${setup.sloS} s, text ${recomputeS.toFixed(3)} s/chunk`);
    io.out(`levels: ${levels.map((l) => `${l.name} ${l.ratioVsFp16.toFixed(2)}x ${(l.bytesPerChunk / 1e6).toFixed(1)} MB ${metric} ${l.quality}`).join('; ')}`);
    io.out('policy            SLO viol.  mean quality  median TTFT (s)  text share');
    for (const r of rows)
      io.out(`${r.policy.padEnd(18)}${r.sloViolationRate.toFixed(3).padStart(9)}  ${r.meanQuality.toFixed(4).padStart(12)}  ${r.medianTtftS.toFixed(3).padStart(15)}  ${r.textShare.toFixed(3).padStart(10)}`);
    if (loopback) {
      io.out('\nloopback TCP vs simulator (median TTFT over the same traces)');
      for (const r of loopback)
        io.out(`${r.policy.padEnd(18)} sim ${r.simMedianTtftS.toFixed(3)} s  loopback ${r.loopbackMedianTtftS.toFixed(3)} s  diff ${(100 * r.relDiff).toFixed(1)}%  same choices ${(100 * r.sameChoicesShare).toFixed(0)}%`);
    }
    return 0;
  },
};
