/**
 * The Llama-family forward pass (llama 1/2/3, mistral, qwen2) on the CPU or a CUDA device, built
 * from one layer-wise step that CacheBlend drives directly:
 *
 *   x = embed(tokens)
 *   for each layer l:  x = layer(l, x, batch, cache)   // writes K/V of the batch into its slots
 *   logits = head(x)
 *
 * `layer` runs one layer for any subset of tokens at any absolute positions, writing their K/V
 * into chosen cache slots and attending over every filled slot whose position is <= the query's.
 * `prefill`, `decode` and `generate` are thin loops over it.
 */
import { Device, resolveDevice, type DeviceSpec } from '../runtime/device.js';
import type { DType } from '../runtime/dtype.js';
import { ArgumentError, DTypeError, DeviceError, ShapeError } from '../runtime/errors.js';
import { addon, type LayerPlanHandle } from '../runtime/addon.js';
import { DTYPE_IDS } from '../runtime/dtype.js';
import { native } from '../runtime/errors.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { validateConfig, type ModelConfig } from './config.js';
import { KVCache } from './kv-cache.js';
import { ropeInvFreq } from './rope.js';
import { Scratch } from './scratch.js';
import { expectedTensorShapes, type ModelWeights } from './weights.js';

export interface ModelOptions {
  /** 'cpu', 'cuda:N' or 'auto' (cuda:0 when usable). Default 'cpu'. */
  device?: DeviceSpec | 'auto';
  /** Weights, activations and KV dtype. The CPU computes in f32; CUDA takes f32, f16, bf16. */
  dtype?: DType;
  /**
   * CUDA, steps of at most 4 tokens (decode): run each projection fused with the RMSNorm before it
   * and the bias, SwiGLU or residual add after it (kernels/decode_gemv.cu). Default true; false runs
   * the separate ops, for comparison.
   */
  fusedDecode?: boolean;
}

/** The tokens of one layer-wise step: their positions and the cache slots their K/V go to. */
export interface TokenBatch {
  readonly n: number;
  /** Host copies; absent for a batch built on the device (CacheBlend's device-side selection). */
  readonly positions?: Int32Array;
  readonly slots?: Int32Array;
  /** i32 [n] on the model's device */
  readonly positionsTensor: Tensor;
  readonly slotsTensor: Tensor;
  dispose(): void;
}

export interface PrefillOptions {
  /** Absolute positions of the tokens (default: continuing after `past`, or 0, 1, 2, ...). */
  positions?: ArrayLike<number>;
  /** A cache to extend (its slots stay; new tokens are appended). Default: a new cache. */
  past?: KVCache;
  /** Which logits to return: the last token's (default), every token's, or none. */
  logits?: 'last' | 'all' | 'none';
  /** Capacity of a newly created cache (default: tokens + 256, at most the context length... or more). */
  capacity?: number;
}

export interface PrefillResult {
  /** f32 [rows, vocab] flattened; rows = 1 for 'last', n for 'all', 0 for 'none'. */
  logits: Float32Array;
  /** The cache holding the past and the new tokens' K/V. */
  cache: KVCache;
  /** Slot indices of the new tokens. */
  slots: Int32Array;
}

type LayerWeights = {
  attnNorm: Tensor; wq: Tensor; wk: Tensor; wv: Tensor; wo: Tensor;
  bq: Tensor | null; bk: Tensor | null; bv: Tensor | null;
  ffnNorm: Tensor; w1: Tensor; w3: Tensor; w2: Tensor;
};

export class Model {
  readonly config: ModelConfig;
  readonly device: Device;
  readonly dtype: DType;
  private readonly embedTable: Tensor;
  private readonly layers: LayerWeights[];
  private readonly finalNorm: Tensor;
  private readonly output: Tensor;
  private readonly invFreq: Tensor;
  private readonly scratch: Scratch;
  /** The native layer plan (native/engine/layer.h): one call per layer. */
  private readonly plan: LayerPlanHandle;

  private constructor(config: ModelConfig, device: Device, dtype: DType, tensors: Map<string, Tensor>, fusedDecode = true) {
    this.config = config;
    this.device = device;
    this.dtype = dtype;
    const get = (name: string): Tensor => {
      const t = tensors.get(name);
      if (!t) throw new ShapeError(`weight ${name} is missing`);
      return t;
    };
    const opt = (name: string): Tensor | null => tensors.get(name) ?? null;
    this.embedTable = get('tok_embeddings');
    this.layers = Array.from({ length: config.nLayers }, (_, i) => ({
      attnNorm: get(`layers.${i}.attention_norm`), wq: get(`layers.${i}.wq`), wk: get(`layers.${i}.wk`),
      wv: get(`layers.${i}.wv`), wo: get(`layers.${i}.wo`), bq: opt(`layers.${i}.bq`), bk: opt(`layers.${i}.bk`),
      bv: opt(`layers.${i}.bv`), ffnNorm: get(`layers.${i}.ffn_norm`), w1: get(`layers.${i}.w1`),
      w3: get(`layers.${i}.w3`), w2: get(`layers.${i}.w2`),
    }));
    this.finalNorm = get('norm');
    this.output = config.tiedEmbeddings ? this.embedTable : get('output');
    this.invFreq = Tensor.fromTypedArray(ropeInvFreq(config), undefined, { device });
    this.scratch = new Scratch(device, dtype);
    this.plan = native(() => addon().layerPlanCreate(
      { dim: config.dim, hidden: config.hiddenDim, nHeads: config.nHeads, nKvHeads: config.nKvHeads, headDim: config.headDim,
        eps: config.normEps, scale: 1 / Math.sqrt(config.headDim), dtype: DTYPE_IDS[dtype], fusedDecode },
      this.layers.map((w) => [w.attnNorm, w.wq, w.wk, w.wv, w.wo, w.bq, w.bk, w.bv, w.ffnNorm, w.w1, w.w3, w.w2]
        .map((t) => t?.nativeHandle ?? null)),
      this.invFreq.nativeHandle));
  }

  /** A model from loaded weights (f32 arrays), moved to the device and converted to `dtype`. */
  static fromWeights(weights: ModelWeights, options: ModelOptions = {}): Model {
    const config = validateConfig(weights.config);
    const { device, dtype } = placement(options);
    const tensors = new Map<string, Tensor>();
    try {
      for (const [name, shape] of expectedTensorShapes(config)) {
        const w = weights.tensors.get(name);
        if (!w) throw new ShapeError(`weight ${name} is missing`);
        tensors.set(name, Tensor.fromTypedArray(w.data, shape, { dtype, device }));
      }
      return new Model(config, device, dtype, tensors, options.fusedDecode ?? true);
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
  }

  /**
   * A seeded random-initialised model of any shape (weights uniform in +-1/sqrt(fan_in), norms 1),
   * generated on the device itself, so 7B-scale shapes need no weight files or host memory.
   */
  static random(config: ModelConfig, options: ModelOptions & { seed?: number } = {}): Model {
    validateConfig(config);
    const { device, dtype } = placement(options);
    const seed = options.seed ?? 0;
    const tensors = new Map<string, Tensor>();
    try {
      let i = 0;
      for (const [name, shape] of expectedTensorShapes(config)) {
        const t = Tensor.empty(shape, { dtype, device });
        tensors.set(name, t);
        const isNorm = shape.length === 1 && !/\.b[qkv]$/.test(name);
        const fanIn = shape[shape.length - 1]!;
        const a = isNorm ? 0 : 1 / Math.sqrt(fanIn);
        // Norm weights near 1 (not exactly, so a norm bug cannot hide); biases small.
        if (isNorm) ops.fillUniform(t, seed * 1000 + i, 0.9, 1.1);
        else ops.fillUniform(t, seed * 1000 + i, -a, a);
        i++;
      }
      return new Model(config, device, dtype, tensors, options.fusedDecode ?? true);
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
  }

  get kvLayout() {
    return { nLayers: this.config.nLayers, nKvHeads: this.config.nKvHeads, headDim: this.config.headDim };
  }

  /** An empty KV cache for this model. */
  newCache(capacity: number): KVCache {
    return new KVCache(this.kvLayout, capacity, this.dtype, this.device);
  }

  /** Uploads positions and slots for a layer-wise step. */
  batch(positions: ArrayLike<number>, slots: ArrayLike<number>): TokenBatch {
    if (positions.length !== slots.length) throw new ShapeError(`${positions.length} positions but ${slots.length} slots`);
    const p = Int32Array.from(positions);
    const s = Int32Array.from(slots);
    const positionsTensor = Tensor.fromTypedArray(p, undefined, { device: this.device });
    const slotsTensor = Tensor.fromTypedArray(s, undefined, { device: this.device });
    return {
      n: p.length, positions: p, slots: s, positionsTensor, slotsTensor,
      dispose() { positionsTensor.dispose(); slotsTensor.dispose(); },
    };
  }

  /** Token embeddings [n, dim] in the model dtype (a new tensor the caller owns). */
  embed(tokens: ArrayLike<number>): Tensor {
    const ids = this.checkTokens(tokens);
    const idsT = Tensor.fromTypedArray(ids, undefined, { device: this.device });
    const x = Tensor.empty([ids.length, this.config.dim], { dtype: this.dtype, device: this.device });
    ops.embedding(idsT, this.embedTable, x);
    idsT.dispose();
    return x;
  }

  /**
   * One transformer layer for the batch's tokens, in place on `x` [n, dim]: their K/V (rotated at
   * their positions) overwrite the cache at the batch's slots, then each token attends to every
   * filled slot whose position is <= its own.
   */
  layer(l: number, x: Tensor, batch: TokenBatch, cache: KVCache): void {
    this.runLayer(l, x, batch, cache, false);
  }

  /**
   * Only layer l's K/V of the batch's tokens (norm, K and V projections, RoPE) into the cache at
   * their slots, from `x` [n, dim], which is not changed: what a KV-deviation check needs from tokens
   * that do not go on to the next layer. layer() on the same rows writes the same K/V.
   */
  layerKV(l: number, x: Tensor, batch: TokenBatch, cache: KVCache): void {
    this.runLayer(l, x, batch, cache, true);
  }

  /**
   * Layer l's attention queries of the batch's rows of `x` [n, dim] (not changed), as the layer
   * computes them before attending: q = RoPE(RMSNorm(x) W_q^T (+ b_q)) at the batch's positions, a
   * new tensor [n, nHeads, headDim] in the model dtype that the caller owns. With the cache's K/V
   * of the same layer, ops.attention on these q gives the layer's attention output (before W_o).
   * CacheBlend's query-attention policy uses it to score context tokens by the question's attention.
   */
  queryVectors(l: number, x: Tensor, batch: TokenBatch): Tensor {
    const c = this.config;
    if (!(l >= 0 && l < c.nLayers)) throw new ArgumentError(`layer ${l} does not exist (the model has ${c.nLayers})`);
    const n = batch.n;
    if (x.numel !== n * c.dim) throw new ShapeError(`queryVectors input ${x.describe()} is not [${n}, ${c.dim}]`);
    if (x.dtype !== this.dtype || !x.device.equals(this.device)) throw new DTypeError(`queryVectors input ${x.describe()} must be ${this.dtype} on ${this.device}`);
    const w = this.layers[l]!;
    const h = Tensor.empty([n, c.dim], { dtype: this.dtype, device: this.device });
    const q = Tensor.empty([n, c.nHeads, c.headDim], { dtype: this.dtype, device: this.device });
    try {
      ops.rmsnorm(x, w.attnNorm, h, c.normEps);
      ops.matmul(h, w.wq, w.bq, q);
      ops.rope(q, batch.positionsTensor, this.invFreq, c.nHeads);
      return q;
    } catch (e) {
      q.dispose();
      throw e;
    } finally {
      h.dispose();
    }
  }

  private runLayer(l: number, x: Tensor, batch: TokenBatch, cache: KVCache, kvOnly: boolean): void {
    const c = this.config;
    if (!(l >= 0 && l < c.nLayers)) throw new ArgumentError(`layer ${l} does not exist (the model has ${c.nLayers})`);
    const n = batch.n;
    if (x.numel !== n * c.dim) throw new ShapeError(`layer input ${x.describe()} is not [${n}, ${c.dim}]`);
    if (x.dtype !== this.dtype || !x.device.equals(this.device)) throw new DTypeError(`layer input ${x.describe()} must be ${this.dtype} on ${this.device}`);
    const k = cache.slab(l, 0), v = cache.slab(l, 1);
    native(() => addon().layerPlanRun(this.plan, l, x.nativeHandle, n, batch.positionsTensor.nativeHandle,
      batch.slotsTensor.nativeHandle, k.nativeHandle, v.nativeHandle, cache.capacity, cache.positionsTensor.nativeHandle,
      cache.length, null, kvOnly));
  }

  /** Final norm and classifier: f32 logits [rows, vocab] for the rows of `x` [rows, dim] (caller owns). */
  head(x: Tensor): Tensor {
    const logits = this.headInto(x);
    const out = logits.cast('f32');
    this.scratch.release();
    return out;
  }

  /** head() into the scratch pool: valid until the next scratch release. */
  private headInto(x: Tensor): Tensor {
    const c = this.config;
    const rows = x.numel / c.dim;
    const h = this.scratch.get('head_h', [rows, c.dim]);
    ops.rmsnorm(x, this.finalNorm, h, c.normEps);
    const logits = this.scratch.get('logits', [rows, c.vocabSize]);
    ops.matmul(h, this.output, null, logits);
    return logits;
  }

  /** Runs `tokens` through every layer, appending them to the cache; returns the chosen logits. */
  prefill(tokens: ArrayLike<number>, options: PrefillOptions = {}): PrefillResult {
    const n = tokens.length;
    if (n === 0) throw new ArgumentError('prefill needs at least one token');
    const cache = options.past ?? this.newCache(options.capacity ?? n + 256);
    const start = cache.nextPosition;
    const positions = options.positions ?? Int32Array.from({ length: n }, (_, i) => start + i);
    if (positions.length !== n) throw new ShapeError(`${n} tokens but ${positions.length} positions`);
    this.checkPositions(positions);
    // Per-call buffers come from the scratch pool, so a decode step allocates nothing.
    const ids = this.checkTokens(tokens);
    const sc = this.scratch;
    const idsT = sc.get('ids', [n], 'i32');
    idsT.write(ids);
    const x = sc.get('x', [n, this.config.dim]);
    ops.embedding(idsT, this.embedTable, x);
    try {
      const slots = this.forward(x, positions, cache);
      const mode = options.logits ?? 'last';
      let logits: Float32Array = new Float32Array(0);
      if (mode !== 'none') {
        const rows = mode === 'all' ? x : x.rows(n - 1, n);
        const l16 = this.headInto(rows);
        const l32 = sc.get('logits32', l16.shape, 'f32');
        l16.castInto(l32);
        logits = l32.toTypedArray() as Float32Array;
        if (rows !== x) rows.dispose();
      }
      return { logits, cache, slots };
    } finally {
      sc.release();
    }
  }

  /** One decode step: appends `token` at the next position; returns its logits. */
  decode(token: number, cache: KVCache): Float32Array {
    return this.prefill([token], { past: cache }).logits;
  }

  /**
   * One decode step queued on the GPU, nothing waited for: the token is `id` (one i32 on the
   * model's device, e.g. sampled there by the previous step), appended at the next position, and
   * the next token is sampled from its logits into `out` (one i32 on the device). generate() chains
   * these so that the host queues step i + 1 before it reads step i's token.
   */
  decodeQueued(id: Tensor, cache: KVCache, sampling: ops.SampleOptions, out: Tensor): void {
    if (!this.device.isCuda) throw new DeviceError(`decodeQueued needs a model on a CUDA device, not ${this.device}`);
    if (id.dtype !== 'i32' || id.numel !== 1 || !id.device.equals(this.device))
      throw new ShapeError(`decodeQueued: the token must be one i32 on ${this.device}, got ${id.describe()}`);
    const position = cache.nextPosition;
    this.checkPositions([position]);
    const sc = this.scratch;
    const x = sc.get('x', [1, this.config.dim]);
    ops.embedding(id, this.embedTable, x);
    try {
      this.forward(x, [position], cache);
      const l16 = this.headInto(x);
      const l32 = sc.get('logits32', l16.shape, 'f32');
      l16.castInto(l32);
      ops.sampleQueued(l32, sampling, out);
    } finally {
      sc.release();
    }
  }

  /** Appends the rows of `x` [n, dim] to the cache at `positions` and runs every layer on them. */
  private forward(x: Tensor, positions: ArrayLike<number>, cache: KVCache): Int32Array {
    const n = positions.length;
    const sc = this.scratch;
    const slots = cache.append(positions);
    const pos32 = Int32Array.from(positions);
    const posT = sc.get('pos', [n], 'i32');
    posT.write(pos32);
    const slotsT = sc.get('slots', [n], 'i32');
    slotsT.write(slots);
    const batch: TokenBatch = { n, positions: pos32, slots, positionsTensor: posT, slotsTensor: slotsT, dispose() {} };
    for (let l = 0; l < this.config.nLayers; l++) this.layer(l, x, batch, cache);
    return slots;
  }

  /**
   * Picks the next token from host f32 logits (greedy when temperature <= 0). The logits are
   * already on the host, so the C++ sampler runs there (an upload for the device kernel would cost
   * more than the sampling); `ops.sample` on a device tensor is for logits that stay on the GPU.
   */
  sampleLogits(logits: Float32Array, o: ops.SampleOptions): number {
    const t = Tensor.fromTypedArray(logits);
    try {
      return ops.sample(t, o);
    } finally {
      t.dispose();
    }
  }

  /** Frees every weight and buffer. */
  dispose(): void {
    const seen = new Set<Tensor>();
    const all = [this.embedTable, this.finalNorm, this.output, this.invFreq,
      ...this.layers.flatMap((w) => [w.attnNorm, w.wq, w.wk, w.wv, w.wo, w.bq, w.bk, w.bv, w.ffnNorm, w.w1, w.w3, w.w2])];
    for (const t of all) if (t && !seen.has(t)) { seen.add(t); t.dispose(); }
    this.scratch.dispose();
  }

  private checkPositions(positions: ArrayLike<number>): void {
    for (let i = 0; i < positions.length; i++)
      if (positions[i]! >= this.config.maxSeqLen)
        throw new ArgumentError(`position ${positions[i]} is beyond the model's context of ${this.config.maxSeqLen} tokens`);
  }

  private checkTokens(tokens: ArrayLike<number>): Int32Array {
    const ids = Int32Array.from(tokens);
    for (let i = 0; i < ids.length; i++) {
      const t = tokens[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= this.config.vocabSize)
        throw new ArgumentError(`token id ${t} at index ${i} is outside the vocabulary [0, ${this.config.vocabSize})`);
    }
    return ids;
  }
}

function placement(o: ModelOptions): { device: Device; dtype: DType } {
  const device = resolveDevice(o.device ?? 'cpu');
  const dtype = o.dtype ?? 'f32';
  if (!device.isCuda && dtype !== 'f32') throw new DTypeError(`the CPU backend computes in f32; dtype ${dtype} needs a CUDA device`);
  if (dtype !== 'f32' && dtype !== 'f16' && dtype !== 'bf16') throw new DTypeError(`model dtype must be f32, f16 or bf16, got ${dtype}`);
  return { device, dtype };
}
