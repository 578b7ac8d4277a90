/**
 * The addon's codec functions (native/binding/codec.cc), typed. Containers cross as Uint8Arrays;
 * codec ids are those of native/codec/format.h.
 */
import { addon, type StorageHandle } from '../runtime/addon.js';

export interface ContainerInfo {
  codec: number;
  codecName: string;
  level: number;
  flags: number;
  layers: number;
  tokens: number;
  heads: number;
  headDim: number;
  fingerprint: string;
  positions: Int32Array;
  streams: number;
  sideBytes: number;
  payloadBytes: number;
  /** 16 hex digits when the container's tables are in a profile, else ''. */
  profileHash: string;
}

export interface NativeEncodeOptions {
  /** codecBenchCuda: the level index recorded in the container. */
  level?: number;
  kiviGroup?: number;
  /** kivi2: KIVI's full-precision residual R (0: none). */
  kiviResidual?: number;
  group?: number;
  streamTokens?: number;
  mAnchor?: Uint8Array;
  mDelta?: Uint8Array;
  fAnchor?: Float32Array;
  fDelta?: Float32Array;
  /** cachegen: per (layer, K|V) 1 = code every token directly (no anchors), 0 = as deltas; absent: each plane decides. */
  raw?: Uint8Array;
  bins?: Uint8Array;
  profileTables?: Uint8Array;
  profileHash?: string;
}

export interface CodecBenchResult {
  encodeMs: number[];
  decodeMs: number[];
  container: Uint8Array;
}

export interface CodecAddon {
  codecEncode(codec: number, level: number, kv: StorageHandle, dtype: number, dims: number[], positions: Int32Array,
    fingerprint: string, options: NativeEncodeOptions): Uint8Array;
  codecInspect(bytes: Uint8Array): ContainerInfo;
  codecDecode(bytes: Uint8Array, out: StorageHandle, outDtype: number, profileTables: Uint8Array | null,
    profileHash: string | null): void;
  cachegenCount(kv: StorageHandle, dtype: number, dims: number[], options: NativeEncodeOptions,
    counts: Float64Array | null): Float64Array;
  cachegenProfileCodes(counts: Float64Array, dims: number[], mAnchor: Uint8Array, mDelta: Uint8Array): Uint8Array;
  cachegenReferenceSums(kv: StorageHandle, dtype: number, dims: number[], options: NativeEncodeOptions,
    sums: Float64Array | null): Float64Array;
  ransRoundTrip(symbols: Uint8Array, freqs: Uint32Array, bits: number): { bytes: Uint8Array; decoded: Uint8Array; clean: boolean };
  freqsFromCodes(codes: Uint8Array): Uint32Array;
  codecBenchCuda?(kv: StorageHandle, dtype: number, dims: number[], positions: Int32Array, fingerprint: string,
    options: NativeEncodeOptions, out: StorageHandle, outDtype: number, reps: number): CodecBenchResult;
}

export function codecAddon(): CodecAddon {
  return addon() as unknown as CodecAddon;
}

/** Codec ids of the container (native/codec/format.h CodecId). */
export const CODEC_IDS = {
  'fp16': 1,
  'int8-token': 2,
  'int8-channel': 3,
  'int4-token': 4,
  'int4-channel': 5,
  'kivi2': 6,
  'cachegen': 7,
  'cachegen-released': 8,
} as const;

export type CodecName = keyof typeof CODEC_IDS;
