/**
 * The codec evaluation behind `kvlab codec eval`: for each context (datasets/stories260k-codec),
 * the context's exact KV is encoded by every codec at every level and decoded; the continuation is
 * prefilled on the decoded KV and on the exact KV, and the two runs' logits are compared.
 *
 * Row columns (one row per codec and level, pooled over all contexts):
 *   codec, level         the codec's name and level; levelIndex (0 = best quality); isDefault (the
 *                        codec's default level, called with no extra options)
 *   bitsPerValue         8 x every container byte / number of K and V values encoded (DESIGN.md)
 *   ratioVsFp16          16 / bitsPerValue
 *   ratioVsInt8          bitsPerValue of the int8 reference / bitsPerValue: the measured int8 codec
 *                        of this run when there is one (`int8Reference` in the result), else 8 bits
 *   pplDeltaPct          (ppl_method / ppl_exact - 1) x 100 of continuation tokens 2..Q over all
 *                        contexts together (row i predicts token i + 1)
 *   kl                   mean over all continuation positions of KL(P_exact || P_method), nats
 *   top1                 share of continuation positions whose argmax equals the exact run's
 *   pplExact, pplMethod  the two perplexities; kvRelErr: max |KV_dec - KV| / max |KV| over contexts
 *   bytes, values        totals over contexts; contexts, positions: how many were scored
 *   encodeMs, decodeMs   total wall time of encode and decode on this machine (not a benchmark)
 *   profile              null, or the name of the per-model profile the codec used (then the
 *                        profile's bytes are NOT in bitsPerValue: they are stored once per model)
 * Profiles (passed in as ProfileVariants, e.g. codec-profiles.ts for CacheGen) give one extra row per
 * variant and one entry of `profiles`: codec, level, name, fingerprint, bytes, builtFromTokens (sample
 * KV it was profiled on), amortisedOverTokens (context tokens of this run), bitsPerValueAmortised
 * (8 x profile bytes / this run's K and V values: what the profile would add if stored per run).
 */
import { modelFingerprint } from '../model/fingerprint.js';
import type { Model } from '../model/model.js';
import type { KVCodec } from '../cachegen/codec.js';
import { ArgumentError } from '../runtime/errors.js';
import type { CodecContext } from './codec-contexts.js';
import { continuationLogits, contextSpan, relativeError } from './kv-continuation.js';
import { meanKL, meanNll, top1Agreement } from './quality.js';

export interface CodecEvalRow {
  codec: string;
  level: string;
  levelIndex: number;
  isDefault: boolean;
  bitsPerValue: number;
  ratioVsFp16: number;
  ratioVsInt8: number;
  pplDeltaPct: number;
  kl: number;
  top1: number;
  pplExact: number;
  pplMethod: number;
  kvRelErr: number;
  profile: string | null;
  bytes: number;
  values: number;
  contexts: number;
  positions: number;
  encodeMs: number;
  decodeMs: number;
}

/** A codec run with a per-model profile kept apart from the chunks (CacheGen's probability tables). */
export interface ProfileVariant {
  codec: string;
  level: string;
  /** Names the profile in rows. */
  name: string;
  fingerprint: string;
  /** Bytes of the serialised profile. */
  bytes: number;
  /** Tokens of sample KV the profile was built from. */
  builtFromTokens: number;
  /** Extra options for encode and decode (e.g. {profile}). */
  encodeOptions: Record<string, unknown>;
  decodeOptions: Record<string, unknown>;
}

/** A profile as reported: the variant's description plus what its size is worth over this run. */
export interface CodecProfileRow extends Omit<ProfileVariant, 'encodeOptions' | 'decodeOptions'> {
  amortisedOverTokens: number;
  bitsPerValueAmortised: number;
}

export interface CodecEvalResult {
  rows: CodecEvalRow[];
  profiles: CodecProfileRow[];
  int8Reference: { codec: string; level: string; bitsPerValue: number } | null;
}

export interface CodecEvalOptions {
  /** Levels to run per codec name (default: all of the codec's levels). */
  levels?: Readonly<Record<string, readonly string[]>>;
  /** Extra runs of a codec at a level with a per-model profile (one row each). */
  profiles?: readonly ProfileVariant[];
  /** The codec whose measured size is the int8 reference (default: 'int8-token' when evaluated). */
  int8Codec?: string;
  onProgress?: (done: number, total: number) => void;
}

interface Acc { bytes: number; values: number; nllE: number; nllM: number; nTargets: number; klSum: number; top1Sum: number;
  rows: number; relErr: number; encMs: number; decMs: number; contexts: number }

export function codecEval(model: Model, contexts: readonly CodecContext[], codecs: readonly KVCodec[], o: CodecEvalOptions = {}): CodecEvalResult {
  if (codecs.length === 0) throw new ArgumentError('codecEval needs at least one codec');
  if (contexts.length === 0) throw new ArgumentError('codecEval needs at least one context');
  const V = model.config.vocabSize;
  const fp = modelFingerprint(model.config);
  const plan = codecs.map((c) => {
    const levels = o.levels?.[c.name] ?? c.levels;
    for (const l of levels) if (!c.levels.includes(l)) throw new ArgumentError(`codec ${c.name} has no level '${l}' (levels: ${c.levels.join(', ')})`);
    return { codec: c, levels };
  });
  // Every run: a codec at a level, with or without a profile.
  const runs: { codec: KVCodec; level: string; variant: ProfileVariant | null }[] = plan.flatMap(({ codec, levels }) => levels.map((level) => ({ codec, level, variant: null })));
  for (const v of o.profiles ?? []) {
    const codec = codecs.find((c) => c.name === v.codec);
    if (!codec || !codec.levels.includes(v.level)) throw new ArgumentError(`profile ${v.name}: codec ${v.codec} at level ${v.level} is not being evaluated`);
    if (v.fingerprint !== fp) throw new ArgumentError(`profile ${v.name} was built for model ${v.fingerprint}, not ${fp}`);
    runs.push({ codec, level: v.level, variant: v });
  }
  const keyOf = (r: { codec: KVCodec; level: string; variant: ProfileVariant | null }) => `${r.codec.name}\u0000${r.level}\u0000${r.variant?.name ?? ''}`;
  const acc = new Map<string, Acc>();
  let tokens = 0;
  contexts.forEach((ctx, ci) => {
    if (ctx.context.length + ctx.continuation.length > model.config.maxSeqLen)
      throw new ArgumentError(`context ${ctx.id}: ${ctx.context.length} + ${ctx.continuation.length} tokens exceed the model's ${model.config.maxSeqLen}`);
    const span = contextSpan(model, ctx.context);
    try {
      tokens += ctx.context.length;
      const exactKV = span.kv.toFloat32();
      const exact = continuationLogits(model, span.kv, span.positions, ctx.continuation);
      const targets = ctx.continuation.slice(1);
      const nllE = meanNll(exact, V, targets) * targets.length;
      for (const run of runs) {
        const { codec, level, variant } = run;
        const t0 = performance.now();
        const bytes = codec.encode({ kv: span.kv, positions: span.positions, fingerprint: fp }, { ...variant?.encodeOptions, level });
        const t1 = performance.now();
        const dec = codec.decode(bytes, { ...variant?.decodeOptions, device: model.device, dtype: model.dtype, fingerprint: fp });
        const t2 = performance.now();
        try {
          const logits = continuationLogits(model, dec.kv, dec.positions, ctx.continuation);
          const key = keyOf(run);
          const a = acc.get(key) ?? { bytes: 0, values: 0, nllE: 0, nllM: 0, nTargets: 0, klSum: 0, top1Sum: 0, rows: 0, relErr: 0, encMs: 0, decMs: 0, contexts: 0 };
          const q = ctx.continuation.length;
          a.bytes += bytes.length;
          a.values += span.kv.numel;
          a.nllE += nllE;
          a.nllM += meanNll(logits, V, targets) * targets.length;
          a.nTargets += targets.length;
          a.klSum += meanKL(exact, logits, V) * q;
          a.top1Sum += top1Agreement(exact, logits, V) * q;
          a.rows += q;
          a.relErr = Math.max(a.relErr, relativeError(dec.kv.toFloat32(), exactKV));
          a.encMs += t1 - t0;
          a.decMs += t2 - t1;
          a.contexts++;
          acc.set(key, a);
        } finally {
          dec.kv.dispose();
        }
      }
    } finally {
      span.kv.dispose();
    }
    o.onProgress?.(ci + 1, contexts.length);
  });
  const bpv = (a: Acc) => (8 * a.bytes) / a.values;
  const int8Name = o.int8Codec ?? 'int8-token';
  const int8 = plan.find((p) => p.codec.name === int8Name);
  const int8Level = int8?.codec.defaultLevel && int8.levels.includes(int8.codec.defaultLevel) ? int8.codec.defaultLevel : int8?.levels[0];
  const int8Acc = int8 && int8Level !== undefined ? acc.get(keyOf({ codec: int8.codec, level: int8Level, variant: null })) : undefined;
  const int8Reference = int8Acc ? { codec: int8!.codec.name, level: int8Level!, bitsPerValue: bpv(int8Acc) } : null;
  const rows: CodecEvalRow[] = [];
  for (const run of runs) {
    const { codec, level, variant } = run;
    const a = acc.get(keyOf(run))!;
    const b = bpv(a);
    const pplExact = Math.exp(a.nllE / a.nTargets), pplMethod = Math.exp(a.nllM / a.nTargets);
    rows.push({
      codec: codec.name, level, levelIndex: codec.levels.indexOf(level), isDefault: level === codec.defaultLevel && variant === null,
      bitsPerValue: b, ratioVsFp16: 16 / b, ratioVsInt8: (int8Reference?.bitsPerValue ?? 8) / b,
      pplDeltaPct: (pplMethod / pplExact - 1) * 100, kl: a.klSum / a.rows, top1: a.top1Sum / a.rows, pplExact, pplMethod,
      kvRelErr: a.relErr, profile: variant?.name ?? null, bytes: a.bytes, values: a.values, contexts: a.contexts, positions: a.rows, encodeMs: a.encMs, decodeMs: a.decMs,
    });
  }
  const values = rows[0]?.values ?? 0;
  const profiles: CodecProfileRow[] = (o.profiles ?? []).map((v) => ({ codec: v.codec, level: v.level, name: v.name, fingerprint: v.fingerprint,
    bytes: v.bytes, builtFromTokens: v.builtFromTokens, amortisedOverTokens: tokens, bitsPerValueAmortised: (8 * v.bytes) / values }));
  return { rows, profiles, int8Reference };
}
