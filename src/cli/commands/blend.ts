import { join } from 'node:path';
import { makeChunk, type ChunkKV } from '../../cacheblend/chunk.js';
import { blendEval, DEFAULT_RATIOS } from '../../cacheblend/eval.js';
import { readBlendContextSet } from '../../eval/blend-contexts.js';
import { fuse } from '../../cacheblend/fusor.js';
import { hostLayerSource } from '../../cacheblend/layer-source.js';
import { fusePipelined } from '../../cacheblend/pipeline.js';
import { DEFAULT_PREFETCH } from '../../cacheblend/prefetch.js';
import { makePolicy, type PolicyName } from '../../cacheblend/policies.js';
import { precomputeChunk, precomputeChunks } from '../../cacheblend/precompute.js';
import { Model } from '../../model/model.js';
import { PRESETS } from '../../model/presets.js';
import { resolveDevice } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import { Stream } from '../../runtime/stream.js';
import { medianTimeMs, medianTimeMsAsync } from '../../runtime/timing.js';
import { benchJson, benchTable, type BenchRow } from '../bench-json.js';
import { loadModel } from '../../model/load.js';
import { PACKAGE_ROOT } from '../../runtime/addon.js';
import { ArgumentError } from '../../runtime/errors.js';
import { num, str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';


function fmt(x: number, d = 4): string {
  return Math.abs(x) >= 1e-3 || x === 0 ? x.toFixed(d) : x.toExponential(2);
}

/**
 * TTFT of each method: from chunk KV at rest to the query's first-token logits on the host. Tiers:
 * `gpu` (chunk KV already on the device), `cpu` (in pinned host memory, loaded layer by layer on a
 * copy stream while the previous layer recomputes: the pipelined fusor) and `cpu-serial` (the same
 * KV copied in whole before fusing, to show what the pipeline hides). Full recompute prefills every
 * token instead. `epic` runs at r = 0.15 and at cacheblend-15%'s compute fraction (equal compute).
 * The prefix ([BOS]) is a cached KV in every method, full recompute included, as a serving system
 * keeps its system prompt: otherwise each method would pay a whole forward pass for one token.
 */
async function blendBench(values: Record<string, unknown>, io: Parameters<Command['run']>[2]): Promise<number> {
  const v = values as Record<string, string | boolean | undefined>;
  const device = resolveDevice(String(v.device));
  const dtype = String(v.dtype) as DType;
  const name = String(v.model);
  const shape = PRESETS[name];
  const model = shape ? Model.random(shape, { device, dtype, seed: 0 })
    : (await loadModel(name, { searchPath: modelSearchPath(v.models as string | undefined, io), device, dtype })).model;
  const nChunks = Number(v.chunks), chunkLen = Number(v['chunk-tokens']), q = Number(v['query-tokens']), reps = Number(v.reps);
  const depths = String(v.prefetch).split(',').map(Number);
  if (depths.some((d) => !Number.isInteger(d) || d < 1)) throw new ArgumentError(`--prefetch: layer counts must be positive integers, got ${String(v.prefetch)}`);
  const V = model.config.vocabSize;
  const tok = (n: number, s: number) => Array.from({ length: n }, (_, i) => (s * 7919 + i * 104729) % (V - 3) + 3);
  const prefix = [model.config.bosId];
  const parts = Array.from({ length: nChunks }, (_, i) => tok(chunkLen, i + 1));
  const query = tok(q, 99);
  const rows: BenchRow[] = [];
  const copyStream = device.isCuda ? Stream.create(device) : undefined;
  try {
    const onDevice = precomputeChunks(model, prefix, parts);
    const prefixKV = precomputeChunk(model, [], prefix);
    // The CPU tier: the same KV in (pinned when CUDA is there) host memory.
    const onHost = device.isCuda ? onDevice.map((c) => makeChunk(c.tokens, c.kv.to('cpu', { pinned: true }), c.positions, c.fingerprint)) : null;
    const time = (fn: () => void) => medianTimeMs(fn, device, reps, 2);
    const timeAsync = (fn: () => Promise<void>) => medianTimeMsAsync(fn, device, reps, 2);
    const rest = [...parts.flat(), ...query];
    const full = time(() => {
      const cache = model.newCache(prefix.length + rest.length);
      cache.appendSpan(prefixKV.kv, prefixKV.positions);
      model.prefill(rest, { past: cache, logits: 'last' });
      cache.dispose();
    });
    const base = { case: { model: name, dtype, chunks: nChunks, chunkTokens: chunkLen, queryTokens: q }, unit: 'ms', floor: null };
    const row = (c: Record<string, unknown>, ms: number, extra: Record<string, unknown> = {}) =>
      rows.push({ ...base, case: { ...base.case, ...c, ...extra }, metric: 'ttft', value: ms, baseline: c.method === 'full-recompute' ? null : 'full-recompute',
        ratioToBaseline: c.method === 'full-recompute' ? null : ms / full });
    row({ method: 'full-recompute', tier: 'none', ratio: 1, computeFraction: 1 }, full);
    const probe = fuse(model, { prefix, prefixKV, chunks: onDevice, query, policy: 'cacheblend', ratio: 0.15, logits: 'last' });
    const cbFraction = probe.computeFraction;
    probe.cache.dispose();
    const methods: [PolicyName, number | undefined][] = [['full-reuse', undefined], ['epic', 0.15], ['epic', cbFraction],
      ['cacheblend', 0.05], ['cacheblend', 0.1], ['cacheblend', 0.15], ['cacheblend', 0.2], ['query-attention', 0.15]];
    for (const [policy, ratio] of methods) {
      const opts = { prefix, prefixKV, query, policy, ...(ratio === undefined ? {} : { ratio }), logits: 'last' as const };
      let fraction = 0;
      const g = time(() => { const r = fuse(model, { ...opts, chunks: onDevice }); fraction = r.computeFraction; r.cache.dispose(); });
      const c = { method: policy, ratio: ratio ?? 0, computeFraction: fraction };
      row({ ...c, tier: device.isCuda ? 'gpu' : 'memory' }, g);
      if (!onHost) continue;
      // query-attention's pre-pass reads every chunk's KV before layer 0: no layer-by-layer pipeline, only the serial tier.
      const pipelines = makePolicy(policy, ratio === undefined ? {} : { ratio }).queryAttentionLayers === undefined;
      for (const prefetch of pipelines ? depths : []) {
        let waits: number[] = [];
        const p = await timeAsync(async () => {
          const r = await fusePipelined(model, { ...opts, prefetch, chunks: onHost.map((h) => ({ tokens: h.tokens, positions: h.positions,
            fingerprint: h.fingerprint, source: hostLayerSource(h, device, copyStream) })) });
          waits = r.loadWaitMs;
          r.cache.dispose();
        });
        row({ ...c, tier: 'cpu' }, p, { prefetch, exposedLoadMs: Number(waits.reduce((a, b) => a + b, 0).toFixed(3)) });
      }
      const serial = time(() => {
        const moved = onHost.map((h) => makeChunk(h.tokens, h.kv.to(device), h.positions, h.fingerprint));
        fuse(model, { ...opts, chunks: moved }).cache.dispose();
        for (const m of moved) m.dispose();
      });
      row({ ...c, tier: 'cpu-serial' }, serial);
    }
    for (const c of [...onDevice, ...(onHost ?? []), prefixKV]) c.dispose();
  } finally {
    copyStream?.dispose();
    model.dispose();
  }
  const j = benchJson('blend', device, ['blend', 'bench', ...process.argv.slice(4)], rows);
  io.out(v.json ? JSON.stringify(j, null, 2) : `${j.card}\n${benchTable(rows)}`);
  return 0;
}

export const blendCommand: Command = {
  name: 'blend',
  positionals: 'eval|bench',
  summary: 'CacheBlend: `blend eval` (quality of every method at every ratio vs full prefill), `blend bench` (TTFT).',
  description: 'eval: contexts from a versioned dataset (default datasets/stories260k-blend/v1.json): chunks\n' +
    'prefilled on their own after the prefix, fused with each method, the continuation as the query.\n' +
    'bench: TTFT of full recompute, full reuse, epic, cacheblend at 5-20% and query-attention at 15% with the chunk KV on the device\n' +
    'and in host memory (the CPU tier), benchmark JSON; defaults to a random Mistral-7B-shaped model on CUDA.',
  options: {
    model: { type: 'string', value: 'NAME|PATH|PRESET', help: 'model (eval: default stories260K; bench: default the mistral-7b preset)' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    dataset: { type: 'string', value: 'FILE', help: 'contexts (JSON, see datasets/stories260k-blend/CARD.md)' },
    ratios: { type: 'string', value: 'R[,R...]', help: 'recompute ratios in [0, 1]', default: DEFAULT_RATIOS.join(',') },
    contexts: { type: 'string', value: 'N', help: 'use the first N contexts only' },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device (bench: default cuda)' },
    dtype: { type: 'string', value: 'f32|f16|bf16', help: 'bench: model dtype', default: 'bf16' },
    chunks: { type: 'string', value: 'N', help: 'bench: chunks', default: '6' },
    'chunk-tokens': { type: 'string', value: 'N', help: 'bench: tokens per chunk', default: '512' },
    'query-tokens': { type: 'string', value: 'N', help: 'bench: query tokens', default: '32' },
    reps: { type: 'string', value: 'N', help: 'bench: timed repetitions', default: '5' },
    prefetch: { type: 'string', value: 'N[,N...]', help: `bench: layers the CPU tier loads ahead of the one recomputing (one row each; the fusor's default is ${DEFAULT_PREFETCH})`, default: String(DEFAULT_PREFETCH) },
    json: { type: 'boolean', help: 'print JSON ({"rows": [...]} for eval, benchmark JSON for bench)' },
  },
  async run(values, pos, io) {
    if (pos[0] === 'bench') {
      return blendBench({ ...values, device: values.device ?? 'cuda', model: values.model ?? 'mistral-7b' }, io);
    }
    if (pos[0] !== 'eval') throw new ArgumentError(`kvlab blend: unknown subcommand '${pos[0] ?? ''}' (known: eval, bench)`);
    const path = str(values, 'dataset') ?? join(PACKAGE_ROOT, 'datasets', 'stories260k-blend', 'v1.json');
    const ds = readBlendContextSet(path);
    const ratios = str(values, 'ratios')!.split(',').map(Number);
    for (const r of ratios) if (!(r >= 0 && r <= 1)) throw new ArgumentError(`--ratios: ${r} is outside [0, 1]`);
    const limit = num(values, 'contexts', 'blend');
    const contexts = limit ? ds.contexts.slice(0, limit) : ds.contexts;
    const modelName = str(values, 'model') ?? 'stories260K';
    const { model } = await loadModel(modelName, {
      searchPath: modelSearchPath(str(values, 'models'), io), device: (str(values, 'device') ?? 'cpu') as never,
    });
    try {
      const rows = blendEval(model, ds.prefix, contexts, {
        ratios,
        onProgress: values.json ? undefined : (d, t) => io.err(`  context ${d}/${t}`),
      });
      if (values.json) {
        io.out(JSON.stringify({ dataset: `${ds.name} v${ds.version}`, model: modelName, device: model.device.toString(), rows }, null, 1));
      } else {
        io.out(`${ds.name} v${ds.version}, ${contexts.length} contexts, ${model.device}`);
        io.out('method               ratio  compute  KL        ppl%     top1   attnDev');
        for (const r of rows)
          io.out(`${r.method.padEnd(20)} ${r.ratio.toFixed(3)}  ${r.computeFraction.toFixed(3)}    ${fmt(r.kl).padEnd(8)}  ${r.pplDeltaPct.toFixed(2).padStart(6)}  ${r.top1.toFixed(3)}  ${r.attnDev.toFixed(4)}`);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
