/**
 * GGUF (llama.cpp's model container), version 3 (version 2 has the same layout and is accepted).
 *
 * Layout, little-endian: magic "GGUF", u32 version, u64 tensor count, u64 metadata count; each
 * metadata entry is a string key, a u32 value type and the value (strings are u64 length + UTF-8
 * bytes; arrays are u32 element type + u64 count + elements); each tensor info is a string name,
 * u32 n_dims, n_dims x u64 ne (innermost first: ne[0] is the row length, so an [out, in] matrix has
 * ne = [in, out]), u32 ggml type and u64 offset relative to the data section. The data section
 * starts at the end of the tensor infos rounded up to `general.alignment` (default 32).
 *
 * Tensor types read: F32 (a view where aligned), F16, BF16 and Q8_0 (blocks of 32 values: an f16
 * scale d then 32 int8 q; value = d * q). Others are reported by name and rejected on read.
 *
 * Architectures: `llama` (also Mistral's GGUFs) and `qwen2`. llama.cpp's converter permutes Hugging
 * Face Q/K rows into the adjacent-pair RoPE layout that its `llama` architecture rotates, so for
 * `llama` the rows of wq/wk (and bq/bk) are permuted back to kvlab's halves layout with
 * `ropePairsToHalves`; `qwen2` already rotates halves (NEOX) and is left as stored.
 */

import { validateConfig, type Architecture, type ModelConfig, type RopeScaling } from './config.js';
import { ModelConfigError, ModelFormatError } from './errors.js';
import { fileSource, memorySource, type ByteSource } from './file-util.js';
import { Llama2cTokenizer } from './llama2c.js';
import { checkWeights, float32ArrayAt, ropePairsToHalves, type ModelWeights, type WeightTensor } from './weights.js';

export type GgufValueType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'array' | 'u64' | 'i64' | 'f64';

/** A metadata value. 64-bit integers are numbers when safe, else bigints. Arrays of 8-, 16-,
 * 32-bit and float elements are typed arrays; others are plain arrays. */
export type GgufValue =
  | number
  | bigint
  | boolean
  | string
  | GgufValue[]
  | Uint8Array
  | Int8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Float32Array
  | Float64Array;

export interface GgufTensorInfo {
  name: string;
  /** Dimensions innermost first, as stored. */
  ne: number[];
  /** ggml type id and name (e.g. 0 'F32', 8 'Q8_0'). */
  type: number;
  typeName: string;
  nElements: number;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Bytes of data, for the types this module reads; null for others. */
  byteLength: number | null;
}

export interface GgufFile {
  source: string;
  version: number;
  metadata: Map<string, GgufValue>;
  metadataTypes: Map<string, GgufValueType>;
  tensors: Map<string, GgufTensorInfo>;
  alignment: number;
  /** Absolute byte offset of the data section. */
  dataOffset: number;
  /** The file's bytes, read where a tensor lies (the file is never held whole). */
  data: ByteSource;
}

const VALUE_TYPES: readonly GgufValueType[] = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
const SCALAR_BYTES: Partial<Record<GgufValueType, number>> = { u8: 1, i8: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, bool: 1, u64: 8, i64: 8, f64: 8 };
/** Nested arrays deeper than this are refused (a guard against hostile files, not a format limit). */
const MAX_ARRAY_DEPTH = 8;
const MAX_DIMS = 4;

/** ggml type ids and names (ggml.h); only F32, F16, BF16 and Q8_0 are read. */
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K',
  11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS',
  18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8',
  25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0', 35: 'TQ2_0',
  39: 'MXFP4',
};
const F32 = 0;
const F16 = 1;
const Q8_0 = 8;
const BF16 = 30;
const Q8_0_BLOCK = 32;
const Q8_0_BLOCK_BYTES = 2 + Q8_0_BLOCK;
const READABLE = 'F32, F16, BF16, Q8_0';

// ---------------------------------------------------------------------------------------------
// Container

/** Thrown inside the header parse when the prefix read so far is too short (never escapes). */
class NeedMoreBytes extends Error {}

/**
 * Read and parse a GGUF file: metadata and tensor infos from a prefix of the file (16 MiB, grown
 * while the header needs more); tensor data is read on demand, so files of any size work.
 */
export async function readGguf(path: string): Promise<GgufFile> {
  const data = fileSource(path);
  for (let n = Math.min(data.length, 1 << 24); ; n = Math.min(data.length, n * 4)) {
    try {
      return parseHeader(data.read(0, n), data, path);
    } catch (e) {
      if (!(e instanceof NeedMoreBytes)) throw e;
    }
  }
}

/** Parse a GGUF file held in `bytes`; `source` names it in errors. Every length and offset is
 * checked against the file's length before use. */
export function parseGguf(bytes: Uint8Array, source: string): GgufFile {
  return parseHeader(bytes, memorySource(bytes), source);
}

/** The header from `bytes`, a prefix of `data` (the whole file). */
function parseHeader(bytes: Uint8Array, data: ByteSource, source: string): GgufFile {
  const fileLength = data.length;
  const r = new Cursor(bytes, source, fileLength);
  r.need(4, 'the magic');
  const magic = String.fromCharCode(bytes[0]!, bytes[1]!, bytes[2]!, bytes[3]!);
  if (magic !== 'GGUF') throw new ModelFormatError(source, `bad magic ${JSON.stringify(magic)}: not a GGUF file (expected "GGUF")`);
  r.pos = 4;
  const version = r.u32('the version');
  if (version !== 3 && version !== 2) {
    const hint = version > 0xffff ? ' (a big-endian GGUF? only little-endian files are read)' : '';
    throw new ModelFormatError(source, `unsupported GGUF version ${version}${hint}; expected 3`);
  }
  const tensorCount = r.count('the tensor count', 8 + 4 + 8 + 4 + 8);
  const kvCount = r.count('the metadata count', 8 + 4 + 1);

  const metadata = new Map<string, GgufValue>();
  const metadataTypes = new Map<string, GgufValueType>();
  for (let k = 0; k < kvCount; k++) {
    const key = r.string(`metadata key ${k}`);
    if (metadata.has(key)) throw new ModelFormatError(source, `duplicate metadata key ${key}`);
    const type = r.valueType(`metadata ${key}`);
    metadataTypes.set(key, type);
    metadata.set(key, r.value(type, `metadata ${key}`, 0));
  }

  let alignment = 32;
  if (metadata.has('general.alignment')) {
    const a = metadata.get('general.alignment');
    if (metadataTypes.get('general.alignment') !== 'u32' || typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0) {
      throw new ModelFormatError(source, `general.alignment must be a u32 power of two but is ${String(a)} (${metadataTypes.get('general.alignment')})`);
    }
    alignment = a;
  }

  const infos: Array<Omit<GgufTensorInfo, 'offset'> & { relOffset: number }> = [];
  const names = new Set<string>();
  for (let t = 0; t < tensorCount; t++) {
    const name = r.string(`the name of tensor ${t}`);
    if (names.has(name)) throw new ModelFormatError(source, `duplicate tensor ${name}`);
    names.add(name);
    const nDims = r.u32(`tensor ${name} n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) throw new ModelFormatError(source, `tensor ${name} has ${nDims} dimensions; expected 1 to ${MAX_DIMS}`);
    const ne: number[] = [];
    let nElements = 1;
    for (let d = 0; d < nDims; d++) {
      const n = r.u64Number(`tensor ${name} ne[${d}]`);
      if (n < 1) throw new ModelFormatError(source, `tensor ${name} has ne[${d}] = ${n}`);
      ne.push(n);
      nElements *= n;
      if (!Number.isSafeInteger(nElements) || nElements > fileLength * 8) {
        throw new ModelFormatError(source, `tensor ${name} claims shape [${ne.join(', ')}...], more elements than the ${fileLength}-byte file can hold`);
      }
    }
    const type = r.u32(`tensor ${name} type`);
    const typeName = GGML_TYPE_NAMES[type];
    if (typeName === undefined) throw new ModelFormatError(source, `tensor ${name} has unknown ggml type ${type}`);
    const relOffset = r.u64Number(`tensor ${name} offset`);
    if (relOffset % alignment !== 0) throw new ModelFormatError(source, `tensor ${name} offset ${relOffset} is not a multiple of the alignment ${alignment}`);
    let byteLength: number | null = null;
    if (type === F32) byteLength = nElements * 4;
    else if (type === F16 || type === BF16) byteLength = nElements * 2;
    else if (type === Q8_0) {
      if (ne[0]! % Q8_0_BLOCK !== 0) throw new ModelFormatError(source, `tensor ${name} is Q8_0 but its row length ${ne[0]} is not a multiple of ${Q8_0_BLOCK}`);
      byteLength = (nElements / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
    }
    infos.push({ name, ne, type, typeName, nElements, relOffset, byteLength });
  }

  const dataOffset = Math.ceil(r.pos / alignment) * alignment;
  if (tensorCount > 0 && dataOffset > fileLength) {
    throw new ModelFormatError(source, `truncated: the data section would start at ${dataOffset} but the file has ${fileLength} bytes`);
  }
  const tensors = new Map<string, GgufTensorInfo>();
  for (const { relOffset, ...info } of infos) {
    const offset = dataOffset + relOffset;
    if (info.byteLength !== null && offset + info.byteLength > fileLength) {
      throw new ModelFormatError(source, `truncated: tensor ${info.name} (${info.typeName} [${info.ne.join(', ')}]) needs bytes ${offset}..${offset + info.byteLength} but the file has ${fileLength}`);
    }
    tensors.set(info.name, { ...info, offset });
  }
  return { source, version, metadata, metadataTypes, tensors, alignment, dataOffset, data };
}

/** The values of tensor `name` as float32, in stored order (row-major over reversed `ne`). */
export function ggufTensorData(file: GgufFile, name: string): Float32Array {
  const info = file.tensors.get(name);
  if (info === undefined) throw new ModelFormatError(file.source, `missing tensor ${name}`);
  if (info.byteLength === null) {
    throw new ModelFormatError(file.source, `tensor ${name} has type ${info.typeName} (${info.type}), which kvlab does not read (supported: ${READABLE})`);
  }
  const bytes = file.data.read(info.offset, info.byteLength);
  const n = info.nElements;
  if (info.type === F32) return float32ArrayAt(bytes, 0, n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, info.byteLength);
  if (info.type === F16) {
    const table = halfTable();
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) out[k] = table[dv.getUint16(2 * k, true)]!;
    return out;
  }
  if (info.type === BF16) {
    const bits = new Uint32Array(n);
    for (let k = 0; k < n; k++) bits[k] = dv.getUint16(2 * k, true) << 16;
    return new Float32Array(bits.buffer);
  }
  // Q8_0
  const table = halfTable();
  const out = new Float32Array(n);
  for (let b = 0; b < n / Q8_0_BLOCK; b++) {
    const base = b * Q8_0_BLOCK_BYTES;
    const d = table[dv.getUint16(base, true)]!;
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * dv.getInt8(base + 2 + j);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Model

const ARCHITECTURES: Record<string, { arch: Architecture; pairRope: boolean; qkvBias: boolean }> = {
  llama: { arch: 'llama', pairRope: true, qkvBias: false },
  qwen2: { arch: 'qwen2', pairRope: false, qkvBias: true },
};

/**
 * The model config from GGUF metadata (`{arch}.context_length`, `.embedding_length`,
 * `.block_count`, `.feed_forward_length`, `.attention.head_count`, `.attention.head_count_kv`,
 * `.attention.layer_norm_rms_epsilon`, `.rope.freq_base` (default 10000), `.rope.scaling.*`),
 * tokenizer BOS/EOS (default 1/2) and the tensors (tied when `output.weight` is absent or
 * bit-identical to `token_embd.weight`). Float32 metadata is turned into the shortest decimal
 * that rounds to it (the f32 9.99999975e-6 becomes 1e-5), the value the converter was given.
 */
export function ggufConfig(file: GgufFile): ModelConfig {
  const { source } = file;
  const archName = file.metadata.get('general.architecture');
  if (typeof archName !== 'string') throw new ModelFormatError(source, 'missing metadata general.architecture');
  const spec = ARCHITECTURES[archName];
  if (spec === undefined) {
    throw new ModelFormatError(source, `unknown architecture ${JSON.stringify(archName)} (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  }
  const p = archName + '.';
  const int = (key: string, fallback?: number): number => {
    const v = file.metadata.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) throw new ModelFormatError(source, `missing metadata ${key}`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
      throw new ModelFormatError(source, `metadata ${key} must be an integer but is ${describe(v)}`);
    }
    return v;
  };
  const float = (key: string, fallback?: number): number => {
    const v = file.metadata.get(key);
    if (v === undefined && fallback !== undefined) return fallback;
    if (v === undefined) throw new ModelFormatError(source, `missing metadata ${key}`);
    if (typeof v !== 'number') throw new ModelFormatError(source, `metadata ${key} must be a number but is ${describe(v)}`);
    return file.metadataTypes.get(key) === 'f32' ? shortestF32Decimal(v) : v;
  };

  if (file.tensors.has('rope_freqs.weight')) {
    throw new ModelFormatError(source, 'tensor rope_freqs.weight (per-frequency RoPE factors, e.g. Llama 3.1 scaling) is not supported yet');
  }
  const dim = int(p + 'embedding_length');
  const nHeads = int(p + 'attention.head_count');
  const headDim = int(p + 'attention.key_length', Number.isInteger(dim / nHeads) ? dim / nHeads : 0);
  const valueLength = int(p + 'attention.value_length', headDim);
  if (valueLength !== headDim) throw new ModelFormatError(source, `attention.value_length ${valueLength} differs from key_length ${headDim}; not supported`);
  const ropeDims = int(p + 'rope.dimension_count', headDim);
  if (ropeDims !== headDim) throw new ModelFormatError(source, `rope.dimension_count ${ropeDims} differs from the head size ${headDim} (partial RoPE); not supported`);

  let ropeScaling: RopeScaling = null;
  const scalingType = file.metadata.get(p + 'rope.scaling.type');
  if (scalingType !== undefined && scalingType !== 'none') {
    if (scalingType !== 'linear') throw new ModelFormatError(source, `RoPE scaling ${describe(scalingType)} is not supported (none, linear)`);
    ropeScaling = { type: 'linear', factor: float(p + 'rope.scaling.factor') };
  } else if (scalingType === undefined && file.metadata.has(p + 'rope.scale_linear')) {
    const factor = float(p + 'rope.scale_linear');
    if (factor !== 1) ropeScaling = { type: 'linear', factor };
  }

  const tokens = file.metadata.get('tokenizer.ggml.tokens');
  const embd = file.tensors.get('token_embd.weight');
  const vocabFallback = Array.isArray(tokens) ? tokens.length : embd !== undefined && embd.ne.length === 2 ? embd.ne[1]! : undefined;
  const config: ModelConfig = {
    architecture: spec.arch,
    dim,
    hiddenDim: int(p + 'feed_forward_length'),
    nLayers: int(p + 'block_count'),
    nHeads,
    nKvHeads: int(p + 'attention.head_count_kv', nHeads),
    headDim,
    vocabSize: int(p + 'vocab_size', vocabFallback),
    maxSeqLen: int(p + 'context_length'),
    normEps: float(p + 'attention.layer_norm_rms_epsilon'),
    ropeTheta: float(p + 'rope.freq_base', 10000),
    ropeScaling,
    tiedEmbeddings: isTied(file),
    qkvBias: spec.qkvBias || file.tensors.has('blk.0.attn_q.bias'),
    bosId: int('tokenizer.ggml.bos_token_id', 1),
    eosId: int('tokenizer.ggml.eos_token_id', 2),
  };
  try {
    return validateConfig(config);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelFormatError(source, `invalid config from metadata: ${e.message}`, { cause: e });
    throw e;
  }
}

/**
 * The weights under kvlab's canonical names (see weights.ts), as float32, with wq/wk (and bq/bk)
 * rows permuted to the halves RoPE layout for `llama`. Unknown tensor names, missing or wrongly
 * shaped tensors and unreadable types throw `ModelFormatError`.
 */
export function ggufWeights(file: GgufFile): ModelWeights {
  const config = ggufConfig(file);
  const pairRope = ARCHITECTURES[config.architecture]!.pairRope;
  const tensors = new Map<string, WeightTensor>();
  for (const [name, info] of file.tensors) {
    if (name === 'output.weight' && config.tiedEmbeddings) continue;
    const canonical = canonicalName(name);
    if (canonical === null) throw new ModelFormatError(file.source, `unexpected tensor ${name} for architecture ${config.architecture}`);
    tensors.set(canonical, { shape: info.ne.slice().reverse(), data: ggufTensorData(file, name) });
  }
  const weights = { config, tensors };
  checkWeights(weights, file.source);
  if (pairRope) {
    const { nHeads, nKvHeads, headDim, dim } = config;
    for (let i = 0; i < config.nLayers; i++) {
      for (const [suffix, heads, rowLen] of [['wq', nHeads, dim], ['wk', nKvHeads, dim], ['bq', nHeads, 1], ['bk', nKvHeads, 1]] as const) {
        const t = tensors.get(`layers.${i}.${suffix}`);
        if (t !== undefined) t.data = ropePairsToHalves(t.data, heads, headDim, rowLen);
      }
    }
  }
  return weights;
}

/**
 * The SentencePiece ('llama') tokenizer from `tokenizer.ggml.*` metadata as a `Llama2cTokenizer`,
 * written the way llama2.c's tokenizer export writes it: U+2581 becomes a space and the BOS/EOS
 * pieces are wrapped in newlines ("\n<s>\n"). Null when the file has no tokenizer.
 */
export function ggufTokenizer(file: GgufFile): Llama2cTokenizer | null {
  const { source, metadata } = file;
  const model = metadata.get('tokenizer.ggml.model');
  const tokens = metadata.get('tokenizer.ggml.tokens');
  if (model === undefined && tokens === undefined) return null;
  if (model !== 'llama') throw new ModelFormatError(source, `tokenizer model ${describe(model)} is not supported (only SentencePiece 'llama')`);
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) {
    throw new ModelFormatError(source, 'tokenizer.ggml.tokens must be an array of strings');
  }
  const n = tokens.length;
  let scores = metadata.get('tokenizer.ggml.scores') ?? new Float32Array(n);
  if (scores instanceof Float64Array) scores = Float32Array.from(scores);
  if (!(scores instanceof Float32Array) || scores.length !== n) {
    throw new ModelFormatError(source, `tokenizer.ggml.scores must be ${n} float32 values but is ${describe(scores)}`);
  }
  const bosId = intOr(file, 'tokenizer.ggml.bos_token_id', 1);
  const eosId = intOr(file, 'tokenizer.ggml.eos_token_id', 2);
  const addSpacePrefix = metadata.get('tokenizer.ggml.add_space_prefix') ?? true;
  if (typeof addSpacePrefix !== 'boolean') throw new ModelFormatError(source, 'tokenizer.ggml.add_space_prefix must be a bool');
  const enc = new TextEncoder();
  const pieces = (tokens as string[]).map((t, id) => {
    const text = t.replaceAll('\u2581', ' ');
    return enc.encode(id === bosId || id === eosId ? `\n${text}\n` : text);
  });
  return new Llama2cTokenizer({ pieces, scores, bosId, eosId, addDummyPrefix: addSpacePrefix, source });
}

/** Read a GGUF model: the parsed file, its weights and its tokenizer (null if it has none). */
export async function loadGguf(path: string): Promise<{ file: GgufFile; weights: ModelWeights; tokenizer: Llama2cTokenizer | null }> {
  const file = await readGguf(path);
  return { file, weights: ggufWeights(file), tokenizer: ggufTokenizer(file) };
}

// ---------------------------------------------------------------------------------------------
// Helpers

const LAYER_NAMES: Record<string, string> = {
  'attn_norm.weight': 'attention_norm',
  'attn_q.weight': 'wq',
  'attn_k.weight': 'wk',
  'attn_v.weight': 'wv',
  'attn_output.weight': 'wo',
  'attn_q.bias': 'bq',
  'attn_k.bias': 'bk',
  'attn_v.bias': 'bv',
  'ffn_norm.weight': 'ffn_norm',
  'ffn_gate.weight': 'w1',
  'ffn_up.weight': 'w3',
  'ffn_down.weight': 'w2',
};
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'tok_embeddings',
  'output_norm.weight': 'norm',
  'output.weight': 'output',
};

/** GGUF tensor name -> kvlab's canonical name, or null. */
function canonicalName(name: string): string | null {
  const g = GLOBAL_NAMES[name];
  if (g !== undefined) return g;
  const m = /^blk\.(0|[1-9][0-9]*)\.(.+)$/.exec(name);
  if (m === null) return null;
  const l = LAYER_NAMES[m[2]!];
  return l === undefined ? null : `layers.${m[1]}.${l}`;
}

/** True when output.weight is absent or holds exactly token_embd.weight's bytes. */
function isTied(file: GgufFile): boolean {
  const out = file.tensors.get('output.weight');
  if (out === undefined) return true;
  const emb = file.tensors.get('token_embd.weight');
  if (emb === undefined || emb.type !== out.type || emb.byteLength === null || emb.byteLength !== out.byteLength) return false;
  if (emb.ne.length !== out.ne.length || emb.ne.some((d, k) => d !== out.ne[k])) return false;
  const a = file.data.read(emb.offset, emb.byteLength), b = file.data.read(out.offset, emb.byteLength);
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function intOr(file: GgufFile, key: string, fallback: number): number {
  const v = file.metadata.get(key) ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ModelFormatError(file.source, `metadata ${key} must be an integer but is ${describe(v)}`);
  return v;
}

/** The shortest decimal that rounds to the float32 `x`. */
function shortestF32Decimal(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let p = 1; p <= 9; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v) || ArrayBuffer.isView(v)) return `an array of ${(v as ArrayLike<unknown>).length}`;
  return String(v);
}

let HALF_TABLE: Float32Array | null = null;

/** f16 bit pattern -> float32 value, for all 65536 patterns. */
function halfTable(): Float32Array {
  if (HALF_TABLE !== null) return HALF_TABLE;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 0) t[h] = sign * m * 2 ** -24;
    else if (e === 31) t[h] = m === 0 ? sign * Infinity : NaN;
    else t[h] = sign * (1 + m / 1024) * 2 ** (e - 15);
  }
  HALF_TABLE = t;
  return t;
}

/** A bounds-checked little-endian reader over the file. */
class Cursor {
  pos = 0;
  readonly #bytes: Uint8Array;
  readonly #dv: DataView;
  readonly #source: string;
  readonly #utf8 = new TextDecoder('utf-8', { fatal: true });

  /** `bytes` is a prefix of a file of `fileLength` bytes: reading past it asks for a longer prefix. */
  readonly #fileLength: number;

  constructor(bytes: Uint8Array, source: string, fileLength = bytes.length) {
    this.#bytes = bytes;
    this.#fileLength = fileLength;
    this.#dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#source = source;
  }

  need(n: number, what: string): void {
    if (this.pos + n > this.#bytes.length) {
      if (this.#bytes.length < this.#fileLength) throw new NeedMoreBytes();
      throw new ModelFormatError(this.#source, `truncated: ${what} needs ${n} bytes at offset ${this.pos} but the file has ${this.#fileLength}`);
    }
  }

  u32(what: string): number {
    this.need(4, what);
    const v = this.#dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  u64Number(what: string): number {
    this.need(8, what);
    const v = this.#dv.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ModelFormatError(this.#source, `${what} is ${v}, too large`);
    return Number(v);
  }

  /** A u64 count of items taking at least `minItemBytes` each, checked against what is left. */
  count(what: string, minItemBytes: number): number {
    const n = this.u64Number(what);
    if (n * minItemBytes > this.#fileLength - this.pos) {
      throw new ModelFormatError(this.#source, `truncated: ${what} is ${n} but only ${this.#fileLength - this.pos} bytes remain`);
    }
    return n;
  }

  string(what: string): string {
    const n = this.u64Number(`the length of ${what}`);
    this.need(n, what);
    const s = this.#bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    try {
      return this.#utf8.decode(s);
    } catch (e) {
      throw new ModelFormatError(this.#source, `${what} is not valid UTF-8`, { cause: e });
    }
  }

  valueType(what: string): GgufValueType {
    const t = this.u32(`the type of ${what}`);
    const name = VALUE_TYPES[t];
    if (name === undefined) throw new ModelFormatError(this.#source, `${what} has unknown value type ${t}`);
    return name;
  }

  value(type: GgufValueType, what: string, depth: number): GgufValue {
    if (type === 'string') return this.string(what);
    if (type === 'array') return this.array(what, depth + 1);
    const size = SCALAR_BYTES[type]!;
    this.need(size, what);
    const dv = this.#dv;
    const at = this.pos;
    this.pos += size;
    switch (type) {
      case 'u8': return dv.getUint8(at);
      case 'i8': return dv.getInt8(at);
      case 'u16': return dv.getUint16(at, true);
      case 'i16': return dv.getInt16(at, true);
      case 'u32': return dv.getUint32(at, true);
      case 'i32': return dv.getInt32(at, true);
      case 'f32': return dv.getFloat32(at, true);
      case 'f64': return dv.getFloat64(at, true);
      case 'bool': return dv.getUint8(at) !== 0;
      case 'u64': return safe(dv.getBigUint64(at, true));
      case 'i64': return safe(dv.getBigInt64(at, true));
    }
  }

  array(what: string, depth: number): GgufValue {
    if (depth > MAX_ARRAY_DEPTH) throw new ModelFormatError(this.#source, `${what}: arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
    const type = this.valueType(`the elements of ${what}`);
    const minBytes = type === 'string' ? 8 : type === 'array' ? 12 : SCALAR_BYTES[type]!;
    const n = this.count(`the length of ${what}`, minBytes);
    const at = this.pos;
    const dv = this.#dv;
    const typed = (ctor: { new (n: number): Exclude<GgufValue, number | bigint | boolean | string | GgufValue[]> }, read: (o: number) => number): GgufValue => {
      this.need(n * minBytes, what);
      const out = new ctor(n);
      for (let k = 0; k < n; k++) out[k] = read(at + k * minBytes);
      this.pos = at + n * minBytes;
      return out;
    };
    switch (type) {
      case 'u8': return typed(Uint8Array, (o) => dv.getUint8(o));
      case 'i8': return typed(Int8Array, (o) => dv.getInt8(o));
      case 'u16': return typed(Uint16Array, (o) => dv.getUint16(o, true));
      case 'i16': return typed(Int16Array, (o) => dv.getInt16(o, true));
      case 'u32': return typed(Uint32Array, (o) => dv.getUint32(o, true));
      case 'i32': return typed(Int32Array, (o) => dv.getInt32(o, true));
      case 'f32': return typed(Float32Array, (o) => dv.getFloat32(o, true));
      case 'f64': return typed(Float64Array, (o) => dv.getFloat64(o, true));
      default: {
        const out: GgufValue[] = [];
        for (let k = 0; k < n; k++) out.push(this.value(type, `${what}[${k}]`, depth));
        return out;
      }
    }
  }
}

function safe(v: bigint): number | bigint {
  return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
}
