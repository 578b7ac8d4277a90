import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PRESETS } from '../../model/presets.js';
import { cudaAvailable, Device } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import { ArgumentError } from '../../runtime/errors.js';
import { synchronize } from '../../runtime/stream.js';
import { Tensor } from '../../runtime/tensor.js';
import { median } from '../../runtime/timing.js';
import { DiskTier } from '../../store/disk-tier.js';
import { disposeEntry, serializeEntry, type RawEntry } from '../../store/entry.js';
import { MemoryTier } from '../../store/memory-tier.js';
import { RedisTier } from '../../store/redis-tier.js';
import { tierGet, type Tier } from '../../store/tier.js';
import { benchJson, benchTable, type BenchRow } from '../bench-json.js';
import { num, str, type Command } from '../command.js';

async function timeS(fn: () => Promise<void>, device: Device): Promise<number> {
  synchronize(device);
  const t0 = performance.now();
  await fn();
  synchronize(device);
  return (performance.now() - t0) / 1000;
}

export const storeCommand: Command = {
  name: 'store',
  positionals: 'bench',
  summary: 'KV store: `store bench` (= `bench store`): put/get/layer-wise load GB/s per tier and Redis round trips.',
  description: 'One raw KV chunk of a --model-shaped model (--tokens tokens, --dtype) is put into and read back from\n' +
    'each tier, --reps times after one warm-up (a fresh key each time); the median is reported. gpu: device\n' +
    'memory (only with CUDA); cpu: host memory (pinned with CUDA); disk: temp file + fsync + rename under\n' +
    '--dir (reads hit a warm page cache); redis: --redis URL or KVLAB_REDIS_URL (skipped when neither is set).\n' +
    'get copies the whole entry to its tier\'s side (device for gpu, host otherwise); layers reads it layer\n' +
    'by layer onto the compute device (cuda:0 with CUDA, else cpu), verifying checksums on disk and Redis.',
  options: {
    tiers: { type: 'string', value: 'LIST', help: 'tiers to measure (gpu,cpu,disk,redis)', default: 'gpu,cpu,disk,redis' },
    model: { type: 'string', value: 'PRESET', help: 'model shape', default: 'mistral-7b' },
    tokens: { type: 'string', value: 'N', help: 'tokens in the chunk', default: '256' },
    dtype: { type: 'string', value: 'f16|bf16|f32', help: 'KV dtype', default: 'f16' },
    dir: { type: 'string', value: 'DIR', help: 'disk tier folder (default: a temp folder, removed after)' },
    redis: { type: 'string', value: 'URL', help: 'Redis URL (default: KVLAB_REDIS_URL)' },
    reps: { type: 'string', value: 'N', help: 'timed repetitions', default: '5' },
    out: { type: 'string', value: 'FILE', help: 'also write the JSON here' },
    json: { type: 'boolean', help: 'print the benchmark JSON instead of the table' },
  },
  async run(values, pos, io) {
    if (pos[0] !== 'bench') throw new ArgumentError(`kvlab store: unknown subcommand '${pos[0] ?? ''}' (known: bench)`);
    const shape = PRESETS[str(values, 'model')!];
    if (!shape) throw new ArgumentError(`--model: '${str(values, 'model')}' is not a preset (${Object.keys(PRESETS).join(', ')})`);
    const tokens = num(values, 'tokens', 'store')!, reps = num(values, 'reps', 'store')!;
    if (!(Number.isInteger(tokens) && tokens > 0 && Number.isInteger(reps) && reps > 0)) throw new ArgumentError('--tokens and --reps must be integers > 0');
    const dtype = str(values, 'dtype') as DType;
    const want = new Set(str(values, 'tiers')!.split(','));
    const cuda = cudaAvailable();
    const compute = cuda ? Device.cuda(0) : Device.cpu;
    const kvShape = [shape.nLayers, 2, tokens, shape.nKvHeads, shape.headDim];
    const elem = dtype === 'f32' ? 4 : 2;
    const bytes = kvShape.reduce((a, b) => a * b, 1) * elem;
    // Random bits: the store moves bytes and never looks at the values.
    const kv = Tensor.fromBytes(randomBytes(bytes), kvShape, { dtype });
    const entry: RawEntry = { kind: 'raw', kv, positions: Int32Array.from({ length: tokens }, (_, i) => i), fingerprint: 'bench' };
    const ownDir = !str(values, 'dir');
    const dir = str(values, 'dir') ?? mkdtempSync(join(tmpdir(), 'kvlab-store-bench-'));
    const redisUrl = str(values, 'redis') ?? io.env.KVLAB_REDIS_URL;
    const tiers: [Tier, Device][] = [];
    const notes: string[] = [];
    if (want.has('gpu')) {
      if (cuda) tiers.push([new MemoryTier({ kind: 'gpu', budgetBytes: (reps + 2) * bytes }), compute]);
      else notes.push('gpu tier skipped: no CUDA device');
    }
    if (want.has('cpu')) tiers.push([new MemoryTier({ kind: 'cpu', budgetBytes: (reps + 2) * bytes }), Device.cpu]);
    if (want.has('disk')) tiers.push([await DiskTier.open({ dir, budgetBytes: (reps + 2) * (bytes + (1 << 20)) }), Device.cpu]);
    let redis: RedisTier | null = null;
    if (want.has('redis')) {
      if (redisUrl) {
        redis = await RedisTier.connect({ url: redisUrl, budgetBytes: (reps + 2) * (bytes + (1 << 20)), prefix: `kvlab-bench-${process.pid}:`, timeoutMs: 30_000 });
        tiers.push([redis, Device.cpu]);
      } else {
        notes.push('redis tier skipped: give --redis URL or set KVLAB_REDIS_URL');
      }
    }
    const rows: BenchRow[] = [];
    const base = { model: str(values, 'model'), tokens, dtype, bytes };
    const gbps = (s: number) => bytes / s / 1e9;
    try {
      for (const [tier, side] of tiers) {
        const put: number[] = [], get: number[] = [], layers: number[] = [];
        for (let r = 0; r <= reps; r++) {
          const key = `bench-${r}`;
          const tp = await timeS(() => tier.put(key, entry), compute);
          const tg = await timeS(async () => { const e = await tierGet(tier, key, side); if (e) disposeEntry(e); }, compute);
          const tl = await timeS(async () => {
            const h = (await tier.open(key))!;
            for (let l = 0; l < shape.nLayers; l++) (await h.layer(l, compute)).dispose();
            h.release();
          }, compute);
          if (r > 0) { put.push(tp); get.push(tg); layers.push(tl); }
        }
        const c = { ...base, tier: tier.name, side: side.toString(), ...(tier.kind === 'disk' ? { cache: 'warm page cache' } : {}) };
        for (const [metric, ts, dev] of [['put', put, side], ['get', get, side], ['layers', layers, compute]] as const)
          rows.push({ case: { ...c, side: dev.toString() }, metric, value: gbps(median(ts)), unit: 'GB/s', baseline: null, ratioToBaseline: null, floor: null });
      }
      if (redis) {
        const rt: number[] = [];
        for (let i = 0; i < 50; i++) {
          const t0 = performance.now();
          await redis.ping();
          rt.push(performance.now() - t0);
        }
        rows.push({ case: { tier: 'redis', op: 'PING' }, metric: 'roundTrip', value: median(rt.slice(5)), unit: 'ms', baseline: null, ratioToBaseline: null, floor: null });
        const small: RawEntry = { ...entry, kv: Tensor.fromBytes(randomBytes(4096), [1, 2, 1, 1, 1024], { dtype: 'f16' }), positions: Int32Array.of(0) };
        await redis.put('small', small);
        const sg: number[] = [];
        for (let i = 0; i < 30; i++) {
          const t0 = performance.now();
          disposeEntry((await tierGet(redis, 'small'))!);
          sg.push(performance.now() - t0);
        }
        const smallBytes = serializeEntry(small).byteLength;
        small.kv.dispose();
        rows.push({ case: { tier: 'redis', op: 'get 4 KiB entry', bytes: smallBytes }, metric: 'roundTrip', value: median(sg.slice(5)), unit: 'ms', baseline: null, ratioToBaseline: null, floor: null });
        await redis.clear();
      }
    } finally {
      for (const [t] of tiers) await t.close();
      kv.dispose();
      if (ownDir) rmSync(dir, { recursive: true, force: true });
    }
    const j = { ...benchJson('store', compute, process.argv.slice(2), rows), notes };
    const outPath = str(values, 'out');
    if (outPath) writeFileSync(outPath, JSON.stringify(j, null, 2) + '\n');
    io.out(values.json ? JSON.stringify(j, null, 2) : [j.card, benchTable(rows), ...notes].join('\n'));
    return 0;
  },
};
