/**
 * Model weights in kvlab's canonical layout, whatever file they came from.
 *
 * Names and shapes (row-major, [out, in] for every projection, so y = W x):
 *
 *   tok_embeddings            [vocabSize, dim]
 *   layers.{i}.attention_norm [dim]
 *   layers.{i}.wq             [nHeads * headDim, dim]
 *   layers.{i}.wk, wv         [nKvHeads * headDim, dim]
 *   layers.{i}.wo             [dim, nHeads * headDim]
 *   layers.{i}.bq             [nHeads * headDim]          (only when config.qkvBias)
 *   layers.{i}.bk, bv         [nKvHeads * headDim]        (only when config.qkvBias)
 *   layers.{i}.ffn_norm       [dim]
 *   layers.{i}.w1 (gate)      [hiddenDim, dim]
 *   layers.{i}.w3 (up)        [hiddenDim, dim]
 *   layers.{i}.w2 (down)      [dim, hiddenDim]
 *   norm                      [dim]
 *   output                    [vocabSize, dim]            (absent when config.tiedEmbeddings)
 *
 * RoPE convention: rows of wq/wk (and bq/bk) are laid out for the "halves" rotation, where
 * component i of a head pairs with component i + headDim/2 (Hugging Face's rotate_half). Loaders
 * of sources that pair adjacent components (2i, 2i+1) permute rows with `ropePairsToHalves`.
 */

import type { ModelConfig } from './config.js';
import { ModelFormatError } from './errors.js';

export interface WeightTensor {
  shape: number[];
  /** Row-major values; may be a view into the loaded file's bytes (treat as read-only). */
  data: Float32Array;
}

export interface ModelWeights {
  config: ModelConfig;
  tensors: Map<string, WeightTensor>;
}

/** Every tensor `config` calls for, with its shape, in a stable order. */
export function expectedTensorShapes(config: ModelConfig): Map<string, number[]> {
  const { dim, hiddenDim, nHeads, nKvHeads, headDim, vocabSize } = config;
  const q = nHeads * headDim;
  const kv = nKvHeads * headDim;
  const m = new Map<string, number[]>();
  m.set('tok_embeddings', [vocabSize, dim]);
  for (let i = 0; i < config.nLayers; i++) {
    const p = `layers.${i}.`;
    m.set(p + 'attention_norm', [dim]);
    m.set(p + 'wq', [q, dim]);
    m.set(p + 'wk', [kv, dim]);
    m.set(p + 'wv', [kv, dim]);
    m.set(p + 'wo', [dim, q]);
    if (config.qkvBias) {
      m.set(p + 'bq', [q]);
      m.set(p + 'bk', [kv]);
      m.set(p + 'bv', [kv]);
    }
    m.set(p + 'ffn_norm', [dim]);
    m.set(p + 'w1', [hiddenDim, dim]);
    m.set(p + 'w3', [hiddenDim, dim]);
    m.set(p + 'w2', [dim, hiddenDim]);
  }
  m.set('norm', [dim]);
  if (!config.tiedEmbeddings) m.set('output', [vocabSize, dim]);
  return m;
}

/**
 * Check that `weights` holds exactly the tensors its config calls for, each with the expected
 * shape and a data length matching it. Throws `ModelFormatError` naming `source` and the tensor.
 */
export function checkWeights(weights: ModelWeights, source: string): void {
  const expected = expectedTensorShapes(weights.config);
  for (const [name, shape] of expected) {
    const t = weights.tensors.get(name);
    if (t === undefined) throw new ModelFormatError(source, `missing tensor ${name} (expected shape [${shape.join(', ')}])`);
    if (t.shape.length !== shape.length || t.shape.some((d, k) => d !== shape[k])) {
      throw new ModelFormatError(source, `tensor ${name} has shape [${t.shape.join(', ')}] but the config calls for [${shape.join(', ')}]`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== n) {
      throw new ModelFormatError(source, `tensor ${name} holds ${t.data.length} values but its shape [${shape.join(', ')}] needs ${n}`);
    }
  }
  for (const name of weights.tensors.keys()) {
    if (!expected.has(name)) throw new ModelFormatError(source, `unexpected tensor ${name} for this config`);
  }
}

/**
 * Permute the rows of a Q or K projection (or bias) from adjacent-pair RoPE layout to halves
 * layout, head by head. `data` is [nHeads * headDim, rowLen] row-major (rowLen 1 for a bias).
 * Within each head, new row j takes old row 2j for j < headDim/2 and old row 2(j - headDim/2) + 1
 * otherwise, so the rotated pair (2i, 2i+1) becomes (i, i + headDim/2). Since q.k is a sum over
 * components, permuting both Q and K the same way leaves attention scores unchanged.
 * Returns a new array; `data` is not modified.
 */
export function ropePairsToHalves(data: Float32Array, nHeads: number, headDim: number, rowLen: number): Float32Array {
  if (headDim % 2 !== 0 || data.length !== nHeads * headDim * rowLen) {
    throw new RangeError(`ropePairsToHalves: expected ${nHeads} heads x ${headDim} (even) rows x ${rowLen} values, received ${data.length} values`);
  }
  const out = new Float32Array(data.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    const base = h * headDim;
    for (let j = 0; j < headDim; j++) {
      const src = j < half ? 2 * j : 2 * (j - half) + 1;
      out.set(data.subarray((base + src) * rowLen, (base + src + 1) * rowLen), (base + j) * rowLen);
    }
  }
  return out;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * `count` little-endian float32 values starting at `byteOffset` of `bytes`: a view (no copy)
 * when the address is 4-byte aligned and the host is little-endian, else a copy. The caller has
 * checked the range against `bytes.length`.
 */
export function float32ArrayAt(bytes: Uint8Array, byteOffset: number, count: number): Float32Array {
  const abs = bytes.byteOffset + byteOffset;
  if (LITTLE_ENDIAN && abs % 4 === 0) return new Float32Array(bytes.buffer, abs, count);
  const out = new Float32Array(count);
  const dv = new DataView(bytes.buffer, abs, count * 4);
  for (let k = 0; k < count; k++) out[k] = dv.getFloat32(k * 4, true);
  return out;
}
