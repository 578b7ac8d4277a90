/**
 * The one interface every KV codec implements (CacheGen, its released variant, and the baselines),
 * so the evaluation, the store and the streamer treat them alike. A codec turns a KV span in the
 * design's layout into a self-describing container (DESIGN.md "Bitstreams") and back.
 */
import type { Device } from '../runtime/device.js';
import type { DType } from '../runtime/dtype.js';
import type { Tensor } from '../runtime/tensor.js';

/** A KV span: kv is [nLayers, 2, n, nKvHeads, headDim] (f32/f16/bf16, host or device). */
export interface KVSpan {
  readonly kv: Tensor;
  /** [n]: the absolute positions K was rotated at; they travel in the container. */
  readonly positions: Int32Array;
  /** modelFingerprint() of the model that computed the KV. */
  readonly fingerprint: string;
}

export interface EncodeOptions {
  /** One of the codec's `levels`; the codec's `defaultLevel` when absent. */
  level?: string;
}

export interface DecodeOptions {
  /** Where the decoded KV is written ('cpu' by default). */
  device?: Device | string;
  /** The decoded KV's dtype (f16 by default). */
  dtype?: DType;
  /** When given, the container's fingerprint must equal it (else an ArgumentError). */
  fingerprint?: string;
}

export interface DecodedSpan extends KVSpan {
  readonly codec: string;
  readonly level: string;
}

export interface KVCodec {
  /** Stable name used in results rows: 'cachegen', 'cachegen-released', 'fp16', 'int8-token', ... */
  readonly name: string;
  /** Quality levels, best quality first. */
  readonly levels: readonly string[];
  readonly defaultLevel: string;
  /** The whole container: every byte that would be stored or sent for this span. */
  encode(span: KVSpan, options?: EncodeOptions): Uint8Array;
  /** Any byte string yields a DecodedSpan or a typed error (FormatError for a corrupt container). */
  decode(bytes: Uint8Array, options?: DecodeOptions): DecodedSpan;
}
