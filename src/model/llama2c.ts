/**
 * llama2.c files: the legacy (version 0) checkpoint `.bin` and the tokenizer `.bin`.
 *
 * Checkpoint layout (all little-endian): seven int32 (dim, hidden_dim, n_layers, n_heads,
 * n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is stored
 * separately), then float32 arrays in run.c's order, each stacked over layers:
 * token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
 * wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
 * w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim], two unused RoPE tables
 * [seq_len, head_size / 2] each, and, only when vocab_size < 0, wcls [vocab, dim].
 * llama2.c hard-codes RMSNorm eps 1e-5, RoPE base 10000, BOS 1 and EOS 2.
 *
 * RoPE: llama2.c rotates adjacent pairs (2i, 2i+1); kvlab rotates halves (i, i + headDim/2).
 * `parseLlama2c` therefore permutes the rows of wq and wk within each head with
 * `ropePairsToHalves` (new row j = old row 2j for j < headDim/2, else old row 2(j - headDim/2) + 1).
 * All other tensors are float32 arrays read where they lie in the file (views into `bytes` for parseLlama2c).
 */

import { readFile } from 'node:fs/promises';
import { validateConfig, type ModelConfig } from './config.js';
import { ModelConfigError, ModelFormatError } from './errors.js';
import { fileSource, memorySource, type ByteSource } from './file-util.js';
import { checkWeights, float32ArrayAt, ropePairsToHalves, type ModelWeights, type WeightTensor } from './weights.js';

const HEADER_BYTES = 7 * 4;
/** "ak42" read as a little-endian int32: the magic of llama2.c's later (version >= 1) exports. */
const AK42_MAGIC = 0x616b3432;

/**
 * Read a llama2.c checkpoint from `path`, tensor by tensor (never the whole file at once, so
 * checkpoints of any size load). See `parseLlama2c`.
 */
export async function loadLlama2c(path: string): Promise<ModelWeights> {
  return parseFrom(fileSource(path), path);
}

/**
 * Parse a llama2.c checkpoint held in `bytes`; `source` names it in errors. The returned
 * tensors (other than wq/wk) are views into `bytes`, which they keep alive.
 */
export function parseLlama2c(bytes: Uint8Array, source: string): ModelWeights {
  return parseFrom(memorySource(bytes), source);
}

function parseFrom(data: ByteSource, source: string): ModelWeights {
  if (data.length < HEADER_BYTES) {
    throw new ModelFormatError(source, `truncated: a llama2.c checkpoint starts with a ${HEADER_BYTES}-byte header but the file has ${data.length} bytes`);
  }
  const head = data.read(0, HEADER_BYTES);
  const dv = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
  const h = Array.from({ length: 7 }, (_, k) => dv.getInt32(k * 4, true));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  if (dim === AK42_MAGIC) {
    throw new ModelFormatError(source, `llama2.c export version ${hiddenDim} (magic "ak42") is not supported; only the legacy version-0 layout (seven int32 then float32 weights) is`);
  }
  for (const [name, v] of [['dim', dim], ['hidden_dim', hiddenDim], ['n_layers', nLayers], ['n_heads', nHeads], ['n_kv_heads', nKvHeads], ['seq_len', seqLen]] as const) {
    if (v <= 0) throw new ModelFormatError(source, `bad header: ${name} is ${v}, expected a positive int32 (not a llama2.c checkpoint?)`);
  }
  if (rawVocab === 0) throw new ModelFormatError(source, 'bad header: vocab_size is 0');
  if (dim % nHeads !== 0) throw new ModelFormatError(source, `bad header: dim ${dim} is not a multiple of n_heads ${nHeads}`);
  const vocabSize = Math.abs(rawVocab);
  const headDim = dim / nHeads;
  const config: ModelConfig = {
    architecture: 'llama',
    dim,
    hiddenDim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    vocabSize,
    maxSeqLen: seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeScaling: null,
    tiedEmbeddings: rawVocab > 0,
    qkvBias: false,
    bosId: 1,
    eosId: 2,
  };
  try {
    validateConfig(config);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelFormatError(source, `bad header: ${e.message}`, { cause: e });
    throw e;
  }

  // Sizes in float32 elements, in run.c's order; checked against the file before any view.
  const kvDim = nKvHeads * headDim;
  const L = nLayers;
  const sections: Array<[string, number]> = [
    ['token_embedding', vocabSize * dim],
    ['rms_att', L * dim],
    ['wq', L * dim * dim],
    ['wk', L * kvDim * dim],
    ['wv', L * kvDim * dim],
    ['wo', L * dim * dim],
    ['rms_ffn', L * dim],
    ['w1', L * hiddenDim * dim],
    ['w2', L * dim * hiddenDim],
    ['w3', L * hiddenDim * dim],
    ['rms_final', dim],
    ['freq_cis', seqLen * headDim], // real and imaginary halves, unused
  ];
  if (!config.tiedEmbeddings) sections.push(['wcls', vocabSize * dim]);
  const offsets = new Map<string, number>();
  let off = HEADER_BYTES;
  for (const [name, count] of sections) {
    offsets.set(name, off);
    off += count * 4;
  }
  if (off !== data.length) {
    const what = off > data.length ? 'truncated' : 'unexpected trailing bytes';
    throw new ModelFormatError(
      source,
      `${what}: the header (dim ${dim}, hidden ${hiddenDim}, ${L} layers, ${nHeads}/${nKvHeads} heads, vocab ${rawVocab}, seq ${seqLen}) implies ${off} bytes but the file has ${data.length}`,
    );
  }

  const tensors = new Map<string, WeightTensor>();
  const at = (section: string, index: number, shape: number[]): WeightTensor => {
    const count = shape.reduce((a, b) => a * b, 1);
    return { shape, data: float32ArrayAt(data.read(offsets.get(section)! + index * count * 4, count * 4), 0, count) };
  };
  tensors.set('tok_embeddings', at('token_embedding', 0, [vocabSize, dim]));
  for (let i = 0; i < L; i++) {
    const p = `layers.${i}.`;
    tensors.set(p + 'attention_norm', at('rms_att', i, [dim]));
    const wq = at('wq', i, [dim, dim]);
    const wk = at('wk', i, [kvDim, dim]);
    tensors.set(p + 'wq', { shape: wq.shape, data: ropePairsToHalves(wq.data, nHeads, headDim, dim) });
    tensors.set(p + 'wk', { shape: wk.shape, data: ropePairsToHalves(wk.data, nKvHeads, headDim, dim) });
    tensors.set(p + 'wv', at('wv', i, [kvDim, dim]));
    tensors.set(p + 'wo', at('wo', i, [dim, dim]));
    tensors.set(p + 'ffn_norm', at('rms_ffn', i, [dim]));
    tensors.set(p + 'w1', at('w1', i, [hiddenDim, dim]));
    tensors.set(p + 'w2', at('w2', i, [dim, hiddenDim]));
    tensors.set(p + 'w3', at('w3', i, [hiddenDim, dim]));
  }
  tensors.set('norm', at('rms_final', 0, [dim]));
  if (!config.tiedEmbeddings) tensors.set('output', at('wcls', 0, [vocabSize, dim]));
  const weights = { config, tensors };
  checkWeights(weights, source);
  return weights;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

export interface EncodeOptions {
  /** Prepend BOS (default true, as run.c's generate does). */
  bos?: boolean;
  /** Append EOS (default false). */
  eos?: boolean;
}

export interface Llama2cTokenizerInit {
  /** Token byte strings, indexed by id (SentencePiece's U+2581 already replaced by a space). */
  pieces: Uint8Array[];
  /** Merge scores, indexed by id (float32). */
  scores: Float32Array;
  /** Longest piece in bytes; computed when omitted. */
  maxTokenLength?: number;
  bosId?: number;
  eosId?: number;
  /** Prepend the " " token to non-empty text (SentencePiece's add_dummy_prefix; default true). */
  addDummyPrefix?: boolean;
  /** Names the file in errors. */
  source?: string;
}

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
/** run.c initialises the best merge score to -1e10 and needs a strictly greater score. */
const MIN_MERGE_SCORE = -1e10;

/**
 * The llama2.c tokenizer (SentencePiece-style BPE over scored pieces), as run.c implements it.
 *
 * encode: text -> UTF-8 (cut at a NUL byte, as run.c reads a C string); optional BOS; the " "
 * token when the text is non-empty (dummy prefix); each UTF-8 code point (at most 4 bytes) looked
 * up as a piece, else one byte-fallback token `<0xXX>` per byte (id byte + 3 in llama2.c
 * vocabularies); then, repeatedly, the adjacent pair whose concatenation is a piece with the
 * highest score (leftmost on ties, score > -1e10) is merged until none is left; optional EOS.
 * Identical output to run.c's O(n^2) loop, computed with a heap in O(n log n).
 *
 * decode: BOS/EOS ids are dropped; a piece right after BOS loses its leading space; `<0xXX>`
 * pieces become the raw byte; the bytes are read as UTF-8.
 *
 * @example
 *   const tok = await Llama2cTokenizer.load('tok512.bin');
 *   tok.decode(tok.encode('Once upon a time')) === 'Once upon a time';
 */
export class Llama2cTokenizer {
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly addDummyPrefix: boolean;
  readonly source: string;
  /** Piece bytes as a latin1 string (one char per byte) -> first id with those bytes. */
  readonly #ids = new Map<string, number>();
  readonly #keys: string[];
  /** Byte value -> its `<0xXX>` token id, or -1. */
  readonly #byteToken = new Int32Array(256).fill(-1);
  /** Token id -> the byte it stands for, or -1. */
  readonly #tokenByte: Int16Array;

  constructor(init: Llama2cTokenizerInit) {
    const n = init.pieces.length;
    this.source = init.source ?? '(tokenizer)';
    if (init.scores.length !== n) {
      throw new ModelFormatError(this.source, `tokenizer has ${n} pieces but ${init.scores.length} scores`);
    }
    this.pieces = init.pieces;
    this.scores = init.scores;
    this.maxTokenLength = init.maxTokenLength ?? init.pieces.reduce((m, p) => Math.max(m, p.length), 0);
    this.bosId = init.bosId ?? 1;
    this.eosId = init.eosId ?? 2;
    this.addDummyPrefix = init.addDummyPrefix ?? true;
    for (const [name, id] of [['bosId', this.bosId], ['eosId', this.eosId]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= n) throw new ModelFormatError(this.source, `tokenizer ${name} ${id} is outside the vocabulary [0, ${n})`);
    }
    this.#keys = init.pieces.map(latin1);
    const longest = this.#keys.findIndex((k) => k.length > this.maxTokenLength);
    if (longest >= 0) {
      throw new ModelFormatError(this.source, `token ${longest} has ${this.#keys[longest]!.length} bytes, more than max_token_length ${this.maxTokenLength}`);
    }
    this.#tokenByte = new Int16Array(n).fill(-1);
    for (let id = 0; id < n; id++) {
      const key = this.#keys[id]!;
      if (!this.#ids.has(key)) this.#ids.set(key, id);
      const m = BYTE_PIECE.exec(key);
      if (m !== null) {
        const b = parseInt(m[1]!, 16);
        this.#tokenByte[id] = b;
        if (this.#byteToken[b] === -1) this.#byteToken[b] = id;
      }
    }
  }

  /** Read a llama2.c `tokenizer.bin`. See `parse`. */
  static async load(path: string, options: { vocabSize?: number } = {}): Promise<Llama2cTokenizer> {
    return Llama2cTokenizer.parse(await readFile(path), path, options);
  }

  /**
   * Parse a llama2.c tokenizer file: int32 max_token_length, then per token float32 score,
   * int32 byte length, bytes. The file does not store the vocabulary size: with
   * `options.vocabSize` exactly that many tokens are read (trailing bytes are an error), without
   * it tokens are read to the end of the file. BOS 1 and EOS 2, as in run.c.
   */
  static parse(bytes: Uint8Array, source: string, options: { vocabSize?: number } = {}): Llama2cTokenizer {
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.length < 4) throw new ModelFormatError(source, `truncated: a llama2.c tokenizer starts with an int32 max_token_length but the file has ${bytes.length} bytes`);
    const maxTokenLength = dv.getInt32(0, true);
    if (maxTokenLength <= 0) throw new ModelFormatError(source, `bad tokenizer header: max_token_length is ${maxTokenLength}`);
    const want = options.vocabSize;
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    while (want === undefined ? off < bytes.length : pieces.length < want) {
      const id = pieces.length;
      if (off + 8 > bytes.length) throw new ModelFormatError(source, `truncated: token ${id} needs a score and a length at offset ${off} but the file has ${bytes.length} bytes`);
      const score = dv.getFloat32(off, true);
      const len = dv.getInt32(off + 4, true);
      off += 8;
      if (len < 0 || len > maxTokenLength) throw new ModelFormatError(source, `token ${id} has byte length ${len}, outside [0, max_token_length ${maxTokenLength}]`);
      if (off + len > bytes.length) throw new ModelFormatError(source, `truncated: token ${id} needs ${len} bytes at offset ${off} but the file has ${bytes.length}`);
      pieces.push(bytes.slice(off, off + len));
      scores.push(score);
      off += len;
    }
    if (off !== bytes.length) throw new ModelFormatError(source, `unexpected trailing bytes after ${pieces.length} tokens (offset ${off} of ${bytes.length})`);
    if (pieces.length < 3) throw new ModelFormatError(source, `tokenizer has ${pieces.length} tokens; BOS 1 and EOS 2 need at least 3`);
    return new Llama2cTokenizer({ pieces, scores: Float32Array.from(scores), maxTokenLength, bosId: 1, eosId: 2, source });
  }

  get vocabSize(): number {
    return this.pieces.length;
  }

  /** Token ids of `text` (see the class comment for the algorithm). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    let bytes = new TextEncoder().encode(text);
    const nul = bytes.indexOf(0);
    if (nul >= 0) bytes = bytes.subarray(0, nul);

    const tokens: number[] = [];
    if (options.bos ?? true) tokens.push(this.bosId);
    if (bytes.length > 0 && this.addDummyPrefix) this.#pushPiece(tokens, ' ');
    // One token per UTF-8 code point, exactly as run.c walks the bytes.
    let start = 0;
    let len = 0;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if ((c & 0xc0) !== 0x80) len = 0;
      if (len === 0) start = i;
      len++;
      const next = i + 1 < bytes.length ? bytes[i + 1]! : 0;
      if ((next & 0xc0) === 0x80 && len < 4) continue;
      this.#pushPiece(tokens, latin1(bytes.subarray(start, start + len)));
      len = 0;
    }
    const merged = this.#merge(tokens);
    if (options.eos ?? false) merged.push(this.eosId);
    return merged;
  }

  /** The bytes run.c prints for `id` following `prevId` (leading space dropped after BOS). */
  decodePiece(prevId: number, id: number): Uint8Array {
    this.#checkId(id);
    const b = this.#tokenByte[id]!;
    if (b >= 0) return Uint8Array.of(b);
    const p = this.pieces[id]!;
    return prevId === this.bosId && p[0] === 0x20 ? p.subarray(1) : p;
  }

  /** Text of `ids`; BOS and EOS are dropped (see the class comment). */
  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let k = 0; k < ids.length; k++) {
      const id = ids[k]!;
      this.#checkId(id);
      if (id === this.bosId || id === this.eosId) continue;
      const p = this.decodePiece(k > 0 ? ids[k - 1]! : -1, id);
      parts.push(p);
      total += p.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return new TextDecoder().decode(out);
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.pieces.length) {
      throw new RangeError(`${this.source}: token id ${id} is outside the vocabulary [0, ${this.pieces.length})`);
    }
  }

  /** Push the token for `key` (latin1 bytes), or one byte-fallback token per byte. */
  #pushPiece(tokens: number[], key: string): void {
    const id = this.#ids.get(key);
    if (id !== undefined) {
      tokens.push(id);
      return;
    }
    for (let k = 0; k < key.length; k++) {
      const b = key.charCodeAt(k);
      const t = this.#byteToken[b]!;
      if (t < 0) throw new ModelFormatError(this.source, `tokenizer has no byte-fallback token <0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      tokens.push(t);
    }
  }

  /** The id of the piece `a` + `b` if its score allows a merge, else -1. */
  #pair(a: number, b: number): number {
    const ka = this.#keys[a]!;
    const kb = this.#keys[b]!;
    if (ka.length + kb.length > this.maxTokenLength) return -1;
    const id = this.#ids.get(ka + kb);
    return id !== undefined && this.scores[id]! > MIN_MERGE_SCORE ? id : -1;
  }

  /**
   * run.c's merge loop: while some adjacent pair concatenates to a piece, merge the one with the
   * highest score (the leftmost of equals). Done on a linked list with a max-heap of candidate
   * pairs keyed (score desc, left position asc); stale candidates are skipped by version checks.
   * The merged token keeps the left node, so node index order is sequence order.
   */
  #merge(tokens: number[]): number[] {
    const n = tokens.length;
    if (n < 2) return tokens.slice();
    const tok = Int32Array.from(tokens);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const ver = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new PairHeap();
    const consider = (a: number): void => {
      const b = next[a]!;
      if (a < 0 || b < 0) return;
      const id = this.#pair(tok[a]!, tok[b]!);
      if (id >= 0) heap.push({ score: this.scores[id]!, left: a, right: b, verLeft: ver[a]!, verRight: ver[b]!, id });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (;;) {
      const c = heap.pop();
      if (c === undefined) break;
      const { left: a, right: b } = c;
      if (!alive[a] || !alive[b] || next[a] !== b || ver[a] !== c.verLeft || ver[b] !== c.verRight) continue;
      tok[a] = c.id;
      ver[a]!++;
      alive[b] = 0;
      const nb = next[b]!;
      next[a] = nb;
      if (nb >= 0) prev[nb] = a;
      if (prev[a]! >= 0) consider(prev[a]!);
      consider(a);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]!) out.push(tok[i]!);
    return out;
  }
}

interface Candidate {
  score: number;
  left: number;
  right: number;
  verLeft: number;
  verRight: number;
  id: number;
}

/** Binary max-heap on (score, then smaller `left`). */
class PairHeap {
  readonly #a: Candidate[] = [];

  push(c: Candidate): void {
    const a = this.#a;
    a.push(c);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(a[i]!, a[p]!)) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }

  pop(): Candidate | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && before(a[l]!, a[m]!)) m = l;
        if (r < a.length && before(a[r]!, a[m]!)) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m]!, a[i]!];
        i = m;
      }
    }
    return top;
  }
}

function before(x: Candidate, y: Candidate): boolean {
  return x.score > y.score || (x.score === y.score && x.left < y.left);
}

/** Bytes as a string of char codes 0-255, a cheap exact map key. */
function latin1(b: Uint8Array): string {
  let s = '';
  for (let k = 0; k < b.length; k += 8192) s += String.fromCharCode(...b.subarray(k, k + 8192));
  return s;
}
