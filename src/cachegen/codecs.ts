/**
 * Every codec of kvlab behind the KVCodec interface, all on the native container
 * (native/codec, FORMAT.md):
 *
 * - `cachegen`: the paper's codec (anchor/delta, per-layer-third levels, rANS per channel); levels in
 *   levels.ts; tables shipped in the chunk, or referenced from a CodecProfile (`{ profile }`).
 *   Encodes and decodes on CUDA too when the KV (or the `device` to decode to) is a GPU.
 * - `cachegen-released`: LMCache's variant (per-token scale, no deltas, 16-bit tables shipped).
 * - `fp16`; `int8-token`, `int8-channel`, `int4-token`, `int4-channel` (symmetric, scale per token
 *   row or per channel); `kivi2` (2-bit asymmetric, keys per channel and values per token, groups
 *   of 32 or 128; levels gN-rR keep KIVI's full-precision window of the most recent tokens).
 */
import { Device } from '../runtime/device.js';
import { DTYPE_IDS, checkDType } from '../runtime/dtype.js';
import { ArgumentError, native } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import type { DecodeOptions, DecodedSpan, EncodeOptions, KVCodec, KVSpan } from './codec.js';
import { CACHEGEN_LEVELS, CACHEGEN_DEFAULT_LEVEL, cachegenLevel, cachegenPlaneLevels, releasedBins, type CachegenLevel } from './levels.js';
import { CODEC_IDS, codecAddon, type CodecName, type ContainerInfo, type NativeEncodeOptions } from './native.js';
import { CodecProfile } from './profile.js';
import { checkSpan, dimsArray, hostKv, type SpanDims } from './span.js';

/** Options of `cachegen` beyond the interface's. */
export interface CachegenEncodeOptions extends EncodeOptions {
  /** Take the probability tables from this profile instead of shipping them in the chunk. */
  profile?: CodecProfile;
  /** Tokens per rANS stream (a multiple of the group size); default: blocks of about 1024. */
  streamTokens?: number;
}

export interface CachegenDecodeOptions extends DecodeOptions {
  /** The profile a profile-referencing container was encoded with. */
  profile?: CodecProfile;
}

/** Reads a container's header (everything validated but the payload checksum). */
export function inspectContainer(bytes: Uint8Array): ContainerInfo {
  if (!(bytes instanceof Uint8Array)) throw new ArgumentError('Expected the container as a Uint8Array');
  return native(() => codecAddon().codecInspect(bytes));
}

abstract class NativeCodec implements KVCodec {
  abstract readonly name: CodecName;
  abstract readonly levels: readonly string[];
  abstract readonly defaultLevel: string;

  protected levelIndex(level: string | undefined): number {
    const name = level ?? this.defaultLevel;
    const i = this.levels.indexOf(name);
    if (i < 0) throw new ArgumentError(`Expected a ${this.name} level (${this.levels.join(', ')}) but received ${JSON.stringify(level)}`);
    return i;
  }

  protected abstract nativeOptions(level: number, dims: SpanDims, options: EncodeOptions): NativeEncodeOptions;

  /** Whether KV on a CUDA device is encoded there (else it is copied to the host first). */
  protected get encodesOnDevice(): boolean {
    return false;
  }

  encode(span: KVSpan, options: EncodeOptions = {}): Uint8Array {
    const dims = checkSpan(span);
    const level = this.levelIndex(options.level);
    const opts = this.nativeOptions(level, dims, options);
    const { t, owned } = this.encodesOnDevice ? { t: span.kv, owned: false } : hostKv(span.kv);
    try {
      return native(() => codecAddon().codecEncode(CODEC_IDS[this.name], level, t.nativeHandle, DTYPE_IDS[t.dtype],
        dimsArray(dims), span.positions, span.fingerprint, opts));
    } finally {
      if (owned) t.dispose();
    }
  }

  decode(bytes: Uint8Array, options: DecodeOptions = {}): DecodedSpan {
    const info = inspectContainer(bytes);
    if (info.codecName !== this.name)
      throw new ArgumentError(`this container was written by codec ${info.codecName}, not ${this.name}: use getCodec('${info.codecName}')`);
    if (info.level >= this.levels.length) throw new ArgumentError(`${this.name} has no level #${info.level}`);
    if (options.fingerprint !== undefined && options.fingerprint !== info.fingerprint)
      throw new ArgumentError(`the container holds KV of model ${info.fingerprint}, not ${options.fingerprint}`);
    const dtype = checkDType(options.dtype ?? 'f16');
    if (dtype !== 'f16' && dtype !== 'f32' && dtype !== 'bf16') throw new ArgumentError(`decoded KV must be f16, f32 or bf16, not ${dtype}`);
    const device = Device.parse(options.device ?? 'cpu');
    const profile = (options as CachegenDecodeOptions).profile;
    if (profile !== undefined && !(profile instanceof CodecProfile)) throw new ArgumentError('Expected options.profile to be a CodecProfile');
    const kv = Tensor.empty([info.layers, 2, info.tokens, info.heads, info.headDim], { dtype, device });
    try {
      native(() => codecAddon().codecDecode(bytes, kv.nativeHandle, DTYPE_IDS[dtype], profile?.tables ?? null, profile?.hash ?? null));
    } catch (e) {
      kv.dispose();
      throw e;
    }
    return { kv, positions: info.positions, fingerprint: info.fingerprint, codec: this.name, level: this.levels[info.level]! };
  }
}

export class CachegenCodec extends NativeCodec {
  readonly name = 'cachegen' as const;
  readonly levels: readonly string[];

  /** `table`: the level definitions (CacheGen's by default; the PCA variant brings its own). */
  constructor(private readonly table: readonly CachegenLevel[] = CACHEGEN_LEVELS, readonly defaultLevel = CACHEGEN_DEFAULT_LEVEL) {
    super();
    this.levels = table.map((l) => l.name);
    if (!this.levels.includes(defaultLevel)) throw new ArgumentError(`default level ${defaultLevel} is not among ${this.levels.join(', ')}`);
  }

  protected override get encodesOnDevice(): boolean {
    return true;
  }

  protected nativeOptions(level: number, dims: SpanDims, options: CachegenEncodeOptions): NativeEncodeOptions {
    const lv = cachegenLevel(this.levels[level]!, this.table);
    const o: NativeEncodeOptions = { group: lv.group, ...cachegenPlaneLevels(lv, dims.nLayers) };
    if (options.streamTokens !== undefined) o.streamTokens = options.streamTokens;
    const p = options.profile;
    if (p !== undefined) {
      if (!(p instanceof CodecProfile)) throw new ArgumentError('Expected options.profile to be a CodecProfile');
      if (p.level !== lv.name) throw new ArgumentError(`the profile is for level ${p.level}, not ${lv.name}`);
      if (p.nLayers !== dims.nLayers || p.nKvHeads !== dims.nKvHeads || p.headDim !== dims.headDim)
        throw new ArgumentError('the profile was built for KV of another shape');
      o.profileTables = p.tables;
      o.profileHash = p.hash;
      o.raw = p.raw;
    }
    return o;
  }

  override encode(span: KVSpan, options: CachegenEncodeOptions = {}): Uint8Array {
    if (options.profile && options.profile instanceof CodecProfile && options.profile.fingerprint !== span.fingerprint)
      throw new ArgumentError(`the profile belongs to model ${options.profile.fingerprint}, the span to ${span.fingerprint}`);
    return super.encode(span, options);
  }
}

class ReleasedCodec extends NativeCodec {
  readonly name = 'cachegen-released' as const;
  readonly levels = ['default'] as const;
  readonly defaultLevel = 'default';
  protected nativeOptions(_level: number, dims: SpanDims): NativeEncodeOptions {
    return { bins: releasedBins(dims.nLayers) };
  }
}

class BaselineCodec extends NativeCodec {
  constructor(readonly name: Exclude<CodecName, 'cachegen' | 'cachegen-released' | 'kivi2'>) {
    super();
  }
  readonly levels = ['default'] as const;
  readonly defaultLevel = 'default';
  protected nativeOptions(): NativeEncodeOptions {
    return {};
  }
}

class Kivi2Codec extends NativeCodec {
  readonly name = 'kivi2' as const;
  /**
   * gN: groups of N (tokens for keys, channels for values), everything 2-bit; gN-rR: with KIVI's
   * full-precision residual of R tokens (keys keep their last T mod R tokens in fp16, values their
   * last R), which is how KIVI leaves a prefilled cache (its default: g32-r128).
   */
  readonly levels = ['g32', 'g128', 'g32-r128', 'g32-r32'] as const;
  readonly defaultLevel = 'g32';
  protected nativeOptions(level: number): NativeEncodeOptions {
    const [group, residual] = [[32, 0], [128, 0], [32, 128], [32, 32]][level]!;
    return { kiviGroup: group, kiviResidual: residual };
  }
}

export function makeCodecs(): KVCodec[] {
  return [
    new CachegenCodec(),
    new ReleasedCodec(),
    new BaselineCodec('fp16'),
    new BaselineCodec('int8-token'),
    new BaselineCodec('int8-channel'),
    new BaselineCodec('int4-token'),
    new BaselineCodec('int4-channel'),
    new Kivi2Codec(),
  ];
}
