import { readFileSync, writeFileSync } from 'node:fs';
import type { ModelConfig } from '../../model/config.js';
import { hfConfig } from '../../model/hf.js';
import { loadModel } from '../../model/load.js';
import { Model } from '../../model/model.js';
import { generate } from '../../model/generate.js';
import { PRESETS, nonEmbeddingParams, prefillFlops } from '../../model/presets.js';
import { cudaStatus, resolveDevice } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import { ArgumentError } from '../../runtime/errors.js';
import * as ops from '../../runtime/ops.js';
import { medianTimeMs } from '../../runtime/timing.js';
import { Tensor } from '../../runtime/tensor.js';
import { benchJson, benchTable, type BenchRow } from '../bench-json.js';
import { num, str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';

/** The device's dense GEMM rate through kvlab's matmul (cuBLAS on CUDA), n^3 in `dtype`. */
function gemmTflops(device: ReturnType<typeof resolveDevice>, dtype: DType, n: number): number {
  const a = Tensor.empty([n, n], { dtype, device });
  const b = Tensor.empty([n, n], { dtype, device });
  const c = Tensor.empty([n, n], { dtype, device });
  ops.fillUniform(a, 1, -1, 1);
  ops.fillUniform(b, 2, -1, 1);
  const ms = medianTimeMs(() => ops.matmul(a, b, null, c), device, 10, 3);
  for (const t of [a, b, c]) t.dispose();
  return (2 * n ** 3) / (ms * 1e9);
}

/**
 * The card's copy bandwidth as measured: a 1 GiB device-to-device copy, read and written bytes over
 * the median time (GB/s). The decode floor is also reported against it, since cards of one model
 * differ (results/README.md: one H100 host ran the same decode step 1.28x faster than another).
 */
function copyGBs(device: ReturnType<typeof resolveDevice>, bytes = 1 << 30): number {
  const a = Tensor.empty([bytes / 4], { dtype: 'f32', device });
  const b = Tensor.empty([bytes / 4], { dtype: 'f32', device });
  ops.fillUniform(a, 3, -1, 1);
  const ms = medianTimeMs(() => b.copyFrom(a), device, 10, 3);
  for (const t of [a, b]) t.dispose();
  return (2 * bytes) / (ms * 1e6);
}

/**
 * One layer's causal self-attention of T tokens in the model's head shape, alone (random q/k/v,
 * positions 0..T-1): median ms, and TFLOP/s over the visible query-key pairs (4 x pairs x heads x
 * head dim). Shows the attention kernel's share of a prefill.
 */
function attentionTiming(device: ReturnType<typeof resolveDevice>, c: ModelConfig, dtype: DType, T: number, reps: number): { ms: number; tflops: number } {
  const q = Tensor.empty([T, c.nHeads, c.headDim], { dtype, device });
  const k = Tensor.empty([T, c.nKvHeads, c.headDim], { dtype, device });
  const v = Tensor.empty([T, c.nKvHeads, c.headDim], { dtype, device });
  const out = Tensor.empty([T, c.nHeads, c.headDim], { dtype, device });
  const pos = Tensor.fromTypedArray(Int32Array.from({ length: T }, (_, i) => i), [T], { device });
  try {
    [q, k, v].forEach((t, i) => ops.fillUniform(t, 10 + i, -2, 2));
    const shape = { queryHeads: c.nHeads, kvHeads: c.nKvHeads, headDim: c.headDim, scale: 1 / Math.sqrt(c.headDim) };
    const ms = medianTimeMs(() => ops.attention(q, k, v, pos, pos, out, shape), device, reps, 2);
    return { ms, tflops: (4 * ((T * (T + 1)) / 2) * c.nHeads * c.headDim) / (ms * 1e9) };
  } finally {
    for (const t of [q, k, v, out, pos]) t.dispose();
  }
}

function configFromJson(path: string): ModelConfig {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const { config, bosId, eosId } = hfConfig(raw, path);
  return { ...config, bosId: bosId ?? 1, eosId: eosId ?? 2 };
}

export const benchCommand: Command = {
  name: 'bench',
  positionals: 'prefill',
  summary: 'Benchmarks with JSON output: `bench prefill` (prefill and batch-1 decode), `bench blend` (= `blend bench`).',
  description: 'The model is a name/path, a preset (mistral-7b) or a Hugging Face config.json; presets and configs are\n' +
    'random-initialised on the device, so no weight files are needed.\n' +
    'Times are medians of --reps runs after 2 warm-ups, with the device synchronised; the floor is FLOPs\n' +
    'over the GEMM rate measured in the same process (2 x non-embedding params x T + 2 x layers x T^2 x dim).\n' +
    'On CUDA each length also times one attention layer alone (`attention`, ms; `attention-rate`, TFLOP/s\n' +
    'over the visible query-key pairs).',
  options: {
    model: { type: 'string', value: 'NAME|PATH|PRESET|CONFIG', help: 'a model, a preset (mistral-7b) or a config.json (random weights)', default: 'mistral-7b' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    tokens: { type: 'string', value: 'N[,N...]', help: 'prefill lengths', default: '4096,8192' },
    'decode-prompt': { type: 'string', value: 'N', help: 'prompt length before timing decode (0 = skip)', default: '1024' },
    'decode-tokens': { type: 'string', value: 'N', help: 'decode steps timed', default: '128' },
    reps: { type: 'string', value: 'N', help: 'timed repetitions', default: '5' },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device', default: 'cuda' },
    dtype: { type: 'string', value: 'f32|f16|bf16', help: 'model dtype', default: 'bf16' },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON here' },
    json: { type: 'boolean', help: 'print the JSON instead of the table' },
    'unfused-decode': { type: 'boolean', help: 'presets/configs: also time decode with the fused decode kernels off' },
  },
  async run(values, pos, io) {
    if (pos[0] !== 'prefill') throw new ArgumentError(`kvlab bench: unknown benchmark '${pos[0] ?? ''}' (known: prefill)`);
    const device = resolveDevice(str(values, 'device')!);
    const dtype = str(values, 'dtype') as DType;
    const name = str(values, 'model')!;
    // A preset or a Hugging Face config.json gives a random-initialised model of that shape.
    const shape = PRESETS[name] ?? (name.endsWith('.json') ? configFromJson(name) : undefined);
    const model = shape ? Model.random(shape, { device, dtype, seed: 0 })
      : (await loadModel(name, { searchPath: modelSearchPath(str(values, 'models'), io), device, dtype })).model;
    const c = model.config;
    const reps = num(values, 'reps', 'bench')!;
    const rows: BenchRow[] = [];
    try {
      const gemm = device.isCuda ? gemmTflops(device, dtype === 'f32' ? 'f32' : dtype, 8192) : null;
      if (gemm !== null) rows.push({ case: { op: 'gemm', n: 8192, dtype }, metric: 'gemm', value: gemm, unit: 'TFLOP/s', baseline: null, ratioToBaseline: null, floor: null });
      const lengths = str(values, 'tokens')!.split(',').map(Number);
      let seed = 1;
      for (const T of lengths) {
        if (!Number.isInteger(T) || T < 1) throw new ArgumentError(`--tokens: bad length ${T}`);
        const rnd = Math.imul(seed++, 2654435761) >>> 0;
        const toks = Array.from({ length: T }, (_, i) => (rnd + i * 7919) % c.vocabSize);
        const cache = model.newCache(T);
        const ms = medianTimeMs(() => { cache.truncate(0); model.prefill(toks, { past: cache }); }, device, reps, 2);
        cache.dispose();
        const floorMs = gemm ? prefillFlops(c, T) / (gemm * 1e9) : null;
        rows.push({ case: { model: name, tokens: T, dtype, params: nonEmbeddingParams(c) }, metric: 'prefill', value: ms, unit: 'ms',
          baseline: floorMs ? 'flop-floor' : null, ratioToBaseline: floorMs ? ms / floorMs : null, floor: floorMs });
        if (device.isCuda) {
          const at = attentionTiming(device, c, dtype, T, reps);
          const cs = { model: name, tokens: T, dtype, op: 'attention-layer' };
          rows.push({ case: cs, metric: 'attention', value: at.ms, unit: 'ms', baseline: null, ratioToBaseline: null, floor: null });
          rows.push({ case: cs, metric: 'attention-rate', value: at.tflops, unit: 'TFLOP/s', baseline: null, ratioToBaseline: null, floor: null });
        }
      }
      const dp = num(values, 'decode-prompt', 'bench')!;
      const dt = num(values, 'decode-tokens', 'bench')!;
      if (dp > 0 && dt > 0) {
        // Floor: every weight byte read once per token at the card's peak bandwidth, and again at
        // its copy bandwidth measured here (one row each).
        const bw = device.isCuda ? cudaStatus().devices[device.index]!.peakBandwidthGBs : null;
        const copy = device.isCuda ? copyGBs(device) : null;
        if (copy !== null) rows.push({ case: { op: 'copy', bytes: 2 ** 30 }, metric: 'copy', value: copy, unit: 'GB/s', baseline: null, ratioToBaseline: null, floor: null });
        const weightBytes = (nonEmbeddingParams(c) + c.dim) * (dtype === 'f32' ? 4 : 2);
        const floorTokS = bw ? (bw * 1e9) / weightBytes : null;
        const copyFloorTokS = copy ? (copy * 1e9) / weightBytes : null;
        const variants: [Model, boolean][] = [[model, true]];
        // The same weights (same seed) with the decode fusions off, to show what they buy.
        if (values['unfused-decode'] && shape) variants.push([Model.random(shape, { device, dtype, seed: 0, fusedDecode: false }), false]);
        for (const [m, fused] of variants) {
          try {
            const tokS = decodeTokensPerSecond(m, dp, dt);
            rows.push({ case: { model: name, prompt: dp, steps: dt, dtype, fusedDecode: fused }, metric: 'decode', value: tokS, unit: 'tokens/s',
              baseline: floorTokS ? 'bandwidth-floor' : null, ratioToBaseline: floorTokS ? tokS / floorTokS : null, floor: floorTokS });
            if (copyFloorTokS) rows.push({ case: { model: name, prompt: dp, steps: dt, dtype, fusedDecode: fused }, metric: 'decode', value: tokS, unit: 'tokens/s',
              baseline: 'copy-floor', ratioToBaseline: tokS / copyFloorTokS, floor: copyFloorTokS });
          } finally {
            if (m !== model) m.dispose();
          }
        }
      }
    } finally {
      model.dispose();
    }
    const j = benchJson('prefill', device, ['bench', 'prefill', ...process.argv.slice(4)], rows);
    const outFile = str(values, 'out');
    if (outFile) writeFileSync(outFile, JSON.stringify(j, null, 2) + '\n');
    io.out(values.json ? JSON.stringify(j, null, 2) : `${j.card}\n${benchTable(rows)}`);
    return 0;
  },
};

/**
 * Greedy decode speed after a `prompt`-token prefill, through generate() (as transformers' baseline
 * times its generate): `steps` decode steps after a warm-up run; the prefill is not counted.
 */
function decodeTokensPerSecond(model: Model, prompt: number, steps: number): number {
  const c = model.config;
  const toks = Array.from({ length: prompt }, (_, i) => (i * 7919 + 13) % c.vocabSize);
  generate(model, toks.slice(0, 16), { maxTokens: 8, stopTokens: [] }).cache.dispose();  // warm-up
  const r = generate(model, toks, { maxTokens: steps + 1, stopTokens: [] });
  r.cache.dispose();
  if (r.tokens.length !== steps + 1) throw new Error(`decode bench: generate stopped after ${r.tokens.length} tokens (${r.stopReason})`);
  return steps / (r.decodeMs / 1000);
}
