/**
 * CodecProfile: CacheGen's per-model probability tables, built once from sample KV of a model at
 * one level and referenced by chunks (by the model fingerprint and the profile's hash) instead of
 * shipping tables in every chunk. One table per (layer, K|V) for anchors and one per
 * (layer, K|V, channel) for deltas, one byte per symbol (a log-scale probability code; FORMAT.md).
 * Every symbol of a profile's alphabet has a non-zero probability, so any KV can be coded with it.
 *
 * Serialised form: "KVLP", u16 version, u32 header length, a JSON header, the tables, and a CRC-32
 * of everything before it.
 *
 * @example
 *   const profile = CodecProfile.build([span1, span2], { level: 'default' });
 *   const bytes = getCodec('cachegen').encode(span, { profile });   // tables not shipped
 *   getCodec('cachegen').decode(bytes, { profile });
 */
import { createHash } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { ArgumentError, FormatError, native } from '../runtime/errors.js';
import type { KVSpan } from './codec.js';
import { cachegenLevel, cachegenPlaneLevels, CACHEGEN_DEFAULT_LEVEL, type CachegenLevel } from './levels.js';
import { codecAddon } from './native.js';
import { checkSpan, dimsArray, hostKv } from './span.js';
import { DTYPE_IDS } from '../runtime/dtype.js';
import type { Tensor } from '../runtime/tensor.js';

const MAGIC = [0x4b, 0x56, 0x4c, 0x50]; // "KVLP"
const VERSION = 1;

interface ProfileHeader {
  fingerprint: string;
  level: string;
  group: number;
  nLayers: number;
  nKvHeads: number;
  headDim: number;
  mAnchor: number[];
  mDelta: number[];
  /**
   * Per (layer, K|V): 1 when the plane codes every token directly instead of as deltas to anchors, chosen
   * over all the sample spans; every chunk encoded with the profile uses it (its tables assume it).
   * Absent in profiles written before the choice existed (all 0).
   */
  raw?: number[];
  /** Tokens of sample KV the profile was built from. */
  tokens: number;
  hash: string;
}

export class CodecProfile {
  private constructor(private readonly header: ProfileHeader, readonly tables: Uint8Array) {}

  get fingerprint(): string { return this.header.fingerprint; }
  get level(): string { return this.header.level; }
  get group(): number { return this.header.group; }
  get nLayers(): number { return this.header.nLayers; }
  get nKvHeads(): number { return this.header.nKvHeads; }
  get headDim(): number { return this.header.headDim; }
  get tokens(): number { return this.header.tokens; }
  /** 16 hex digits; the container records it. */
  get hash(): string { return this.header.hash; }
  get mAnchor(): Uint8Array { return Uint8Array.from(this.header.mAnchor); }
  get mDelta(): Uint8Array { return Uint8Array.from(this.header.mDelta); }
  get raw(): Uint8Array { return this.header.raw ? Uint8Array.from(this.header.raw) : new Uint8Array(this.header.nLayers * 2); }
  /** Bytes of the serialised profile (what is stored once per model and level). */
  get byteLength(): number { return this.serialize().length; }

  /** Builds a profile from sample spans of one model (same fingerprint and shape). */
  static build(spans: readonly KVSpan[], options: { level?: string; levels?: readonly CachegenLevel[] } = {}): CodecProfile {
    if (!Array.isArray(spans) || spans.length === 0) throw new ArgumentError('CodecProfile.build needs at least one sample span');
    const level = cachegenLevel(options.level ?? CACHEGEN_DEFAULT_LEVEL, options.levels);
    const d0 = checkSpan(spans[0]!, 'spans[0]');
    const planes = cachegenPlaneLevels(level, d0.nLayers);
    const { mAnchor, mDelta } = planes;
    let counts: Float64Array | null = null;
    let sums: Float64Array | null = null;
    let tokens = 0;
    const eachSpan = (fn: (t: Tensor, d: ReturnType<typeof checkSpan>) => void) => spans.forEach((span, i) => {
      const d = checkSpan(span, `spans[${i}]`);
      if (span.fingerprint !== spans[0]!.fingerprint || d.nLayers !== d0.nLayers || d.nKvHeads !== d0.nKvHeads || d.headDim !== d0.headDim)
        throw new ArgumentError(`spans[${i}] comes from another model than spans[0]`);
      const { t, owned } = hostKv(span.kv);
      try {
        fn(t, d);
      } finally {
        if (owned) t.dispose();
      }
    });
    // Each plane's reference from all spans together (cachegen_math.h cg_plane_raw), then the counts under it.
    eachSpan((t, d) => {
      sums = native(() => codecAddon().cachegenReferenceSums(t.nativeHandle, DTYPE_IDS[t.dtype], dimsArray(d),
        { group: level.group, ...planes }, sums));
    });
    const s = sums as unknown as Float64Array;
    const raw = Uint8Array.from({ length: d0.nLayers * 2 }, (_, p) => (s[2 * p + 1]! < s[2 * p]! ? 1 : 0));
    eachSpan((t, d) => {
      counts = native(() => codecAddon().cachegenCount(t.nativeHandle, DTYPE_IDS[t.dtype], dimsArray(d),
        { group: level.group, ...planes, raw }, counts));
      tokens += d.n;
    });
    const dims = [d0.nLayers, 1, d0.nKvHeads, d0.headDim];
    const tables = native(() => codecAddon().cachegenProfileCodes(counts!, dims, mAnchor, mDelta));
    const header: Omit<ProfileHeader, 'hash'> = {
      fingerprint: spans[0]!.fingerprint, level: level.name, group: level.group, nLayers: d0.nLayers,
      nKvHeads: d0.nKvHeads, headDim: d0.headDim, mAnchor: [...mAnchor], mDelta: [...mDelta], raw: [...raw], tokens,
    };
    return new CodecProfile({ ...header, hash: profileHash(header, tables) }, tables);
  }

  serialize(): Uint8Array {
    const json = new TextEncoder().encode(JSON.stringify(this.header));
    const out = new Uint8Array(4 + 2 + 4 + json.length + this.tables.length + 4);
    const dv = new DataView(out.buffer);
    out.set(MAGIC, 0);
    dv.setUint16(4, VERSION, true);
    dv.setUint32(6, json.length, true);
    out.set(json, 10);
    out.set(this.tables, 10 + json.length);
    dv.setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
    return out;
  }

  /** Parses a serialised profile; any corruption is a FormatError. */
  static parse(bytes: Uint8Array): CodecProfile {
    if (!(bytes instanceof Uint8Array)) throw new ArgumentError('Expected the profile bytes as a Uint8Array');
    if (bytes.length < 14 || MAGIC.some((m, i) => bytes[i] !== m)) throw new FormatError('not a kvlab codec profile (bad magic or too short)');
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (dv.getUint16(4, true) !== VERSION) throw new FormatError(`codec profile version ${dv.getUint16(4, true)} is not supported`);
    if (dv.getUint32(bytes.length - 4, true) !== crc32(bytes.subarray(0, bytes.length - 4))) throw new FormatError('codec profile checksum mismatch');
    const jl = dv.getUint32(6, true);
    if (10 + jl + 4 > bytes.length) throw new FormatError('codec profile header length out of bounds');
    let h: ProfileHeader;
    try {
      h = JSON.parse(new TextDecoder().decode(bytes.subarray(10, 10 + jl))) as ProfileHeader;
    } catch (e) {
      throw new FormatError('codec profile header is not JSON', { cause: e });
    }
    const tables = bytes.slice(10 + jl, bytes.length - 4);
    const ints = (a: unknown) => Array.isArray(a) && a.every((x) => Number.isInteger(x) && x >= 1 && x <= 31);
    const pos = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
    if (typeof h !== 'object' || h === null || typeof h.fingerprint !== 'string' || typeof h.level !== 'string' ||
      !pos(h.group) || !pos(h.nLayers) || !pos(h.nKvHeads) || !pos(h.headDim) || !ints(h.mAnchor) || !ints(h.mDelta) ||
      h.mAnchor.length !== h.nLayers * 2 || h.mDelta.length !== h.nLayers * 2 || typeof h.hash !== 'string' ||
      (h.raw !== undefined && !(Array.isArray(h.raw) && h.raw.length === h.nLayers * 2 && h.raw.every((x) => x === 0 || x === 1))))
      throw new FormatError('codec profile header is malformed');
    const { hash, ...rest } = h;
    let expect = 0;
    for (let p = 0; p < h.nLayers * 2; p++) expect += 2 * h.mAnchor[p]! + 1 + h.nKvHeads * h.headDim * (2 * h.mDelta[p]! + 1);
    if (tables.length !== expect) throw new FormatError(`codec profile holds ${tables.length} table bytes, its shape needs ${expect}`);
    if (profileHash(rest, tables) !== hash) throw new FormatError('codec profile hash does not match its contents');
    return new CodecProfile(h, tables);
  }
}

function profileHash(header: Omit<ProfileHeader, 'hash'>, tables: Uint8Array): string {
  const h = createHash('sha256');
  const { tokens: _tokens, ...identity } = header;
  h.update(JSON.stringify(identity));
  h.update(tables);
  let hex = h.digest('hex').slice(0, 16);
  if (/^0+$/.test(hex)) hex = '0000000000000001'; // 0 means "tables shipped" in the container
  return hex;
}
