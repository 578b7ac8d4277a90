/**
 * Running one grid cell (a method, optionally over codec-compressed chunks, at a ratio) on a
 * dataset's items, against full prefill. `ItemCache` keeps what every cell of a dataset shares:
 * the chunks' exact KV, their decoded KV per (codec, level), and the full-prefill reference.
 *
 * CacheBlend over CacheGen-compressed chunks lives here (DESIGN.md: eval composes cachegen and
 * cacheblend, which do not know each other): each chunk's KV span goes through codec.encode at the
 * cell's level and codec.decode onto the model's device and dtype, and the decoded chunks are fused.
 */
import { makeChunk, type ChunkKV } from '../../cacheblend/chunk.js';
import { fuse, type FuseResult } from '../../cacheblend/fusor.js';
import type { PolicyName } from '../../cacheblend/policies.js';
import { precomputeChunks } from '../../cacheblend/precompute.js';
import type { KVCodec } from '../../cachegen/codec.js';
import type { ProfileVariant } from '../codec-eval.js';
import type { Model } from '../../model/model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { ArgumentError } from '../../runtime/errors.js';
import { tokenF1 } from '../metrics.js';
import { argmaxRow, meanKL, meanNll, top1Agreement } from '../quality.js';
import type { GridItem } from './datasets.js';

interface Reference { logits: Float32Array; answer: number[]; text: string }
interface Compressed { chunks: ChunkKV[]; bytes: number; values: number; decodeMs: number }

/** Per-dataset state shared by the cells: exact chunk KV, decoded chunk KV, full-prefill references. */
export class ItemCache {
  private readonly exact = new Map<string, ChunkKV[]>();
  private readonly compressed = new Map<string, Compressed>();
  private readonly refs = new Map<string, Reference>();
  constructor(readonly model: Model, readonly tokenizer: Tokenizer | null) {}

  chunks(item: GridItem): ChunkKV[] {
    let c = this.exact.get(item.id);
    if (!c) { c = precomputeChunks(this.model, item.prefix, item.chunks); this.exact.set(item.id, c); }
    return c;
  }

  compressedChunks(item: GridItem, codec: KVCodec, level: string, profile: ProfileVariant | null = null): Compressed {
    const key = `${item.id}\u0000${codec.name}\u0000${level}\u0000${profile?.name ?? ''}`;
    let c = this.compressed.get(key);
    if (!c) {
      let bytes = 0, values = 0, decodeMs = 0;
      const out: ChunkKV[] = [];
      for (const ch of this.chunks(item)) {
        const enc = codec.encode({ kv: ch.kv, positions: ch.positions, fingerprint: ch.fingerprint }, { ...profile?.encodeOptions, level });
        const t0 = performance.now();
        const dec = codec.decode(enc, { ...profile?.decodeOptions, device: this.model.device, dtype: this.model.dtype, fingerprint: ch.fingerprint });
        decodeMs += performance.now() - t0;
        bytes += enc.length;
        values += ch.kv.numel;
        out.push(makeChunk(ch.tokens, dec.kv, dec.positions, ch.fingerprint));
      }
      c = { chunks: out, bytes, values, decodeMs };
      this.compressed.set(key, c);
    }
    return c;
  }

  reference(item: GridItem): Reference {
    let r = this.refs.get(item.id);
    if (!r) {
      const res = runFuse(this.model, item, this.chunks(item), 'full-recompute', null);
      r = { logits: res.logits, answer: res.answer, text: this.text(res.answer) };
      this.refs.set(item.id, r);
    }
    return r;
  }

  text(tokens: number[]): string {
    return this.tokenizer ? this.tokenizer.decode(tokens) : tokens.join(' ');
  }

  dispose(): void {
    for (const cs of this.exact.values()) for (const c of cs) c.dispose();
    for (const cs of this.compressed.values()) for (const c of cs.chunks) c.dispose();
    this.exact.clear();
    this.compressed.clear();
    this.refs.clear();
  }
}

interface FuseRun { logits: Float32Array; answer: number[]; ratio: number; computeFraction: number; fuseMs: number }

/** fuse (+ greedy answer in generate mode, the fused cache copied into one with room for it). */
function runFuse(model: Model, item: GridItem, chunks: readonly ChunkKV[], method: PolicyName, ratio: number | null): FuseRun {
  const gen = item.mode === 'generate';
  const t0 = performance.now();
  const r: FuseResult = fuse(model, { prefix: item.prefix, chunks, query: item.query, policy: method,
    ...(ratio === null ? {} : { ratio }), logits: gen ? 'last' : 'all' });
  const fuseMs = performance.now() - t0;
  const answer: number[] = [];
  try {
    if (gen) {
      const maxNew = item.maxNewTokens ?? 16;
      const stops = new Set(item.stopTokens ?? [model.config.eosId, model.config.bosId]);
      const span = r.cache.exportSpan();
      const cache = model.newCache(span.positions.length + maxNew);
      try {
        cache.appendSpan(span.kv, span.positions);
        let logits = r.logits;
        for (let i = 0; i < maxNew; i++) {
          const t = argmaxRow(logits, model.config.vocabSize, 0);
          if (stops.has(t)) break;
          answer.push(t);
          if (i + 1 < maxNew) logits = model.decode(t, cache);
        }
      } finally {
        span.kv.dispose();
        cache.dispose();
      }
    }
  } finally {
    r.cache.dispose();
  }
  return { logits: r.logits, answer, ratio: r.ratio, computeFraction: r.computeFraction, fuseMs };
}

/** Numeric results of a cell: means over items (null where a metric does not apply). */
export type CellMetrics = Record<string, number | null>;

export interface CellRequest {
  method: PolicyName;
  ratio: number | null;
  /** A codec and level: chunks are encoded and decoded before fusing. */
  codec: KVCodec | null;
  level: string | null;
  /** A per-model profile the codec encodes and decodes with (its bytes are not in bitsPerValue). */
  profile?: ProfileVariant | null;
}

export function evaluateCell(cache: ItemCache, items: readonly GridItem[], req: CellRequest, onItem?: (done: number) => void): CellMetrics {
  const model = cache.model;
  const V = model.config.vocabSize;
  if (items.length === 0) throw new ArgumentError('a grid cell needs at least one item');
  if ((req.codec === null) !== (req.level === null)) throw new ArgumentError('a codec needs a level and a level needs a codec');
  const sums = new Map<string, number>();
  const counts = new Map<string, number>();
  const add = (k: string, v: number) => { sums.set(k, (sums.get(k) ?? 0) + v); counts.set(k, (counts.get(k) ?? 0) + 1); };
  let bytes = 0, values = 0;
  items.forEach((item, i) => {
    const ref = cache.reference(item);
    let chunks = cache.chunks(item);
    if (req.codec) {
      const c = cache.compressedChunks(item, req.codec, req.level!, req.profile ?? null);
      chunks = c.chunks;
      bytes += c.bytes;
      values += c.values;
      add('codecDecodeMs', c.decodeMs);
    }
    const r = runFuse(model, item, chunks, req.method, req.ratio);
    add('ratio', r.ratio);
    add('computeFraction', r.computeFraction);
    add('fuseMs', r.fuseMs);
    if (item.mode === 'logits') {
      const targets = item.query.slice(1);
      add('kl', meanKL(ref.logits, r.logits, V));
      add('pplDeltaPct', (Math.exp(meanNll(r.logits, V, targets) - meanNll(ref.logits, V, targets)) - 1) * 100);
      add('top1', top1Agreement(ref.logits, r.logits, V));
    } else {
      const text = cache.text(r.answer);
      add('firstTokenKL', meanKL(ref.logits, r.logits, V));
      add('top1', top1Agreement(ref.logits, r.logits, V));
      add('agreementF1', ref.text.trim() === '' && text.trim() === '' ? 1 : tokenF1(text, ref.text));
      for (const [k, v] of Object.entries(item.score?.(text) ?? {})) add(k, v);
    }
    onItem?.(i + 1);
  });
  const out: CellMetrics = {};
  for (const [k, s] of sums) out[k] = s / counts.get(k)!;
  if (req.codec) {
    out.bitsPerValue = (8 * bytes) / values;
    out.ratioVsFp16 = 16 / out.bitsPerValue;
    if (req.profile) out.profileBytes = req.profile.bytes;
  }
  out.items = items.length;
  return out;
}
