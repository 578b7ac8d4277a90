// Hugging Face model folders (src/model/hf.ts, safetensors.ts, hf-tokenizer.ts): tiny folders
// written here (config.json, safetensors serialised by hand, a sharded index, a hand-written
// byte-level BPE tokenizer.json), exact value round trips, and a typed error for every bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ModelFormatError } from '../src/model/errors.js';
import { hfConfig, loadHfFolder } from '../src/model/hf.js';
import { HfTokenizer } from '../src/model/hf-tokenizer.js';
import type { Llama2cTokenizer } from '../src/model/llama2c.js';
import {
  decodeSafetensorsData,
  loadSafetensors,
  openSafetensors,
  parseSafetensors,
  readSafetensorsHeader,
  readSafetensorsTensors,
} from '../src/model/safetensors.js';
import type { Tokenizer } from '../src/model/tokenizer.js';
import { expectedTensorShapes } from '../src/model/weights.js';
import { FormatError, KvlabError, NotFoundError } from '../src/runtime/errors.js';
import { rng } from './support/reference.js';

// Type-level: both tokenizers satisfy the engine's interface.
type Assert<T extends true> = T;
export type Llama2cIsTokenizer = Assert<Llama2cTokenizer extends Tokenizer ? true : false>;
export type HfIsTokenizer = Assert<HfTokenizer extends Tokenizer ? true : false>;

let tmp = '';
let dirCount = 0;
test.before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvlab-hf-'));
});
test.after(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

async function freshDir(): Promise<string> {
  const d = join(tmp, `m${dirCount++}`);
  await mkdir(d);
  return d;
}

// ---------------------------------------------------------------------------------------------
// Writing safetensors by hand

type DType = 'F32' | 'F16' | 'BF16';
interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** u64 N, N bytes of JSON (space-padded to a multiple of 8), then the tensors back to back. */
function safetensorsBytes(tensors: RawTensor[], opts: { metadata?: Record<string, string>; edit?: (h: Record<string, unknown>) => void } = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  opts.edit?.(header);
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  let at = 8 + hb.length;
  for (const t of tensors) {
    out.set(t.bytes, at);
    at += t.bytes.length;
  }
  return out;
}


/** Independent f16 decoding by the IEEE formula. */
function f16Value(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m === 0 ? sign * Infinity : NaN;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

/** Random tensor data in `dtype`, with the float32 values a loader must produce. */
function randomTensor(name: string, dtype: DType, shape: number[], rand: () => number): { raw: RawTensor; expected: Float32Array } {
  const n = shape.reduce((a, b) => a * b, 1);
  const expected = new Float32Array(n);
  if (dtype === 'F32') {
    for (let k = 0; k < n; k++) expected[k] = (rand() * 2 - 1) * 3;
    return { raw: { name, dtype, shape, bytes: new Uint8Array(expected.slice().buffer) }, expected };
  }
  const bits = new Uint16Array(n);
  for (let k = 0; k < n; k++) {
    if (dtype === 'BF16') {
      // The top half of a random float32 is a bf16 value; its float32 is that half shifted up.
      const f = new Float32Array([(rand() * 2 - 1) * 3]);
      bits[k] = new Uint32Array(f.buffer)[0]! >>> 16;
      expected[k] = new Float32Array(new Uint32Array([bits[k]! << 16]).buffer)[0]!;
    } else {
      let h = Math.floor(rand() * 65536);
      if (((h >> 10) & 0x1f) === 31) h &= ~0x0400; // keep it finite
      bits[k] = h;
      expected[k] = f16Value(h);
    }
  }
  const bytes = new Uint8Array(2 * n);
  const dv = new DataView(bytes.buffer);
  for (let k = 0; k < n; k++) dv.setUint16(2 * k, bits[k]!, true);
  return { raw: { name, dtype, shape, bytes }, expected };
}

function bitEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return false;
  return true;
}

function u16Bytes(bits: number[]): Uint8Array {
  const b = new Uint8Array(2 * bits.length);
  const dv = new DataView(b.buffer);
  bits.forEach((v, k) => dv.setUint16(2 * k, v, true));
  return b;
}

// ---------------------------------------------------------------------------------------------
// A hand-written byte-level BPE tokenizer

/** GPT-2's byte -> printable character table (printable Latin-1 bytes map to themselves, the
 * rest to U+0100 upwards in byte order). */
function byteChars(): string[] {
  const keep = (b: number): boolean => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out.push(String.fromCharCode(keep(b) ? b : next++));
  return out;
}

const MERGES = ['h e', 't he', 'Ġ t', 'Ġt he', 'Ġ c', 'Ġc a', 'Ġca t'];
const BOS = 263;
const EOS = 264;
const TOKENIZER_VOCAB = 265;

function tokenizerJson(template: boolean): Record<string, unknown> {
  const vocab: Record<string, number> = {};
  byteChars().forEach((c, b) => (vocab[c] = b));
  MERGES.forEach((m, k) => (vocab[m.replace(' ', '')] = 256 + k));
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(BOS, '<s>'), special(EOS, '</s>')],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: template
      ? {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<s>': { id: '<s>', ids: [BOS], tokens: ['<s>'] } },
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: MERGES,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Writing model folders

interface FolderSpec {
  config: Record<string, unknown>;
  /** dtype of each HF tensor (default F32). */
  dtypeOf?: (name: string) => DType;
  /** Split the tensors over two shards with an index. */
  sharded?: boolean;
  /** Also store lm_head.weight although tied. */
  extraTensors?: RawTensor[];
  tokenizer?: 'template' | 'plain' | null;
  tokenizerConfig?: Record<string, unknown> | null;
}

const TINY = {
  hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2,
  vocab_size: 272, max_position_embeddings: 128, rms_norm_eps: 1e-5,
};

const KV_TO_HF: Record<string, string> = {
  attention_norm: 'input_layernorm.weight', wq: 'self_attn.q_proj.weight', wk: 'self_attn.k_proj.weight',
  wv: 'self_attn.v_proj.weight', wo: 'self_attn.o_proj.weight', bq: 'self_attn.q_proj.bias', bk: 'self_attn.k_proj.bias',
  bv: 'self_attn.v_proj.bias', ffn_norm: 'post_attention_layernorm.weight', w1: 'mlp.gate_proj.weight',
  w3: 'mlp.up_proj.weight', w2: 'mlp.down_proj.weight',
};

function hfNameOf(kv: string): string {
  if (kv === 'tok_embeddings') return 'model.embed_tokens.weight';
  if (kv === 'norm') return 'model.norm.weight';
  if (kv === 'output') return 'lm_head.weight';
  const [, i, s] = /^layers\.(\d+)\.(.+)$/.exec(kv)!;
  return `model.layers.${i}.${KV_TO_HF[s!]}`;
}

/** Write a folder; returns the expected float32 values by kvlab name. */
async function writeFolder(dir: string, spec: FolderSpec): Promise<Map<string, Float32Array>> {
  await writeFile(join(dir, 'config.json'), JSON.stringify(spec.config, null, 2));
  const c = hfConfig(spec.config, 'config.json').config;
  const rand = rng(1234);
  const raws: RawTensor[] = [];
  const expected = new Map<string, Float32Array>();
  for (const [kv, shape] of expectedTensorShapes({ ...c, bosId: 0, eosId: 0 })) {
    const name = hfNameOf(kv);
    const t = randomTensor(name, spec.dtypeOf?.(name) ?? 'F32', shape, rand);
    raws.push(t.raw);
    expected.set(kv, t.expected);
  }
  raws.push(...(spec.extraTensors ?? []));
  if (spec.sharded) {
    const half = Math.ceil(raws.length / 2);
    const shards = [raws.slice(0, half), raws.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [k, shard] of shards.entries()) {
      const file = `model-0000${k + 1}-of-00002.safetensors`;
      await writeFile(join(dir, file), safetensorsBytes(shard));
      for (const t of shard) weightMap[t.name] = file;
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  } else {
    await writeFile(join(dir, 'model.safetensors'), safetensorsBytes(raws, { metadata: { format: 'pt' } }));
  }
  if (spec.tokenizer) await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(spec.tokenizer === 'template')));
  if (spec.tokenizerConfig) await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(spec.tokenizerConfig));
  return expected;
}

const LLAMA_CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', ...TINY, rope_theta: 500000,
  rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 },
  bos_token_id: BOS, eos_token_id: [EOS, 7], tie_word_embeddings: false, hidden_act: 'silu', torch_dtype: 'bfloat16',
};
const LLAMA_TOKENIZER_CONFIG = {
  bos_token: '<s>', eos_token: { content: '</s>', lstrip: false, normalized: false, rstrip: false, single_word: false },
  add_bos_token: true, add_eos_token: false, clean_up_tokenization_spaces: false,
};

// ---------------------------------------------------------------------------------------------
// safetensors

test('safetensors: F16 and BF16 decode to hand-computed float32 values', async () => {
  const f16 = [0x3c00, 0xc000, 0x3555, 0x0001, 0x03ff, 0x0400, 0x7bff, 0x8000, 0x7c00, 0xfc00, 0x7e01];
  const bf16 = [0x3f80, 0xc040, 0x3e20, 0x0001, 0x8000, 0x7f80, 0xff80, 0x7fc1, 0x4049];
  const bytes = safetensorsBytes([
    { name: 'h', dtype: 'F16', shape: [f16.length], bytes: u16Bytes(f16) },
    { name: 'b', dtype: 'BF16', shape: [bf16.length], bytes: u16Bytes(bf16) },
  ]);
  const path = join(tmp, 'values.safetensors');
  await writeFile(path, bytes);
  const t = await loadSafetensors(path);
  const h = [...t.get('h')!.data];
  assert.equal(h.slice(0, 7), [1, -2, 0.333251953125, 5.960464477539063e-8, 0.00006097555160522461, 0.00006103515625, 65504]);
  assert.ok(Object.is(h[7], -0));
  assert.is(h[8], Infinity);
  assert.is(h[9], -Infinity);
  assert.ok(Number.isNaN(h[10]));
  // NaN payload kept: f16 mantissa 0x201 -> float32 mantissa 0x201 << 13.
  assert.is(new Uint32Array(t.get('h')!.data.buffer)[10], 0x7fc02000);
  const b = [...t.get('b')!.data];
  assert.equal(b.slice(0, 3), [1, -3, 0.15625]);
  assert.is(b[3], 2 ** -133);
  assert.ok(Object.is(b[4], -0));
  assert.is(b[5], Infinity);
  assert.is(b[6], -Infinity);
  assert.is(new Uint32Array(t.get('b')!.data.buffer)[7], 0x7fc10000);
  assert.is(b[8], 3.140625);
});

test('safetensors: random F32/F16/BF16 round-trip exactly, from a file and from memory', async () => {
  const rand = rng(99);
  const made = [
    randomTensor('a.f32', 'F32', [7, 19], rand),
    randomTensor('b.f16', 'F16', [111], rand),
    randomTensor('c.bf16', 'BF16', [3, 5, 11], rand),
    randomTensor('d.empty', 'F32', [0, 4], rand),
  ];
  const bytes = safetensorsBytes(made.map((m) => m.raw), { metadata: { format: 'pt', note: 'x' } });
  const path = join(tmp, 'random.safetensors');
  await writeFile(path, bytes);
  const header = await readSafetensorsHeader(path);
  assert.equal(header.metadata, { format: 'pt', note: 'x' });
  assert.equal([...header.tensors.keys()], ['a.f32', 'b.f16', 'c.bf16', 'd.empty']);
  assert.is(header.tensors.get('c.bf16')!.byteLength, 2 * 165);
  const fromFile = await loadSafetensors(path);
  const fromMemory = parseSafetensors(bytes, path).tensors;
  for (const m of made) {
    for (const got of [fromFile.get(m.raw.name)!, fromMemory.get(m.raw.name)!]) {
      assert.equal(got.shape, m.raw.shape);
      assert.ok(bitEqual(got.data, m.expected), m.raw.name);
    }
  }
  // In memory, aligned F32 tensors are views of the bytes.
  const view = fromMemory.get('a.f32')!.data;
  assert.ok(view.buffer === bytes.buffer || view.byteOffset % 4 !== 0);
  // A subset by name, in the order asked for.
  const sub = await readSafetensorsTensors(await openSafetensors(path), ['c.bf16', 'a.f32']);
  assert.equal([...sub.keys()], ['c.bf16', 'a.f32']);
});

// ---------------------------------------------------------------------------------------------
// Hugging Face folders

test('llama: config mapping, separate lm_head, mixed dtypes round-trip exactly, inv_freq ignored', async () => {
  const dir = await freshDir();
  const expected = await writeFolder(dir, {
    config: LLAMA_CONFIG,
    dtypeOf: (n) => (n.includes('proj') ? 'BF16' : n.includes('embed') ? 'F16' : 'F32'),
    extraTensors: [randomTensor('model.layers.0.self_attn.rotary_emb.inv_freq', 'F32', [2], rng(5)).raw],
    tokenizer: 'template',
    tokenizerConfig: LLAMA_TOKENIZER_CONFIG,
  });
  const { config, weights, tokenizer } = await loadHfFolder(dir);
  assert.equal(config, {
    architecture: 'llama', dim: 16, hiddenDim: 24, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 4, vocabSize: 272,
    maxSeqLen: 128, normEps: 1e-5, ropeTheta: 500000,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
    tiedEmbeddings: false, qkvBias: false, bosId: BOS, eosId: EOS,
  });
  assert.is(weights.config, config);
  assert.equal([...weights.tensors.keys()].sort(), [...expected.keys()].sort());
  assert.ok(weights.tensors.has('output'));
  assert.equal(weights.tensors.get('layers.1.wk')!.shape, [8, 16]);
  assert.equal(weights.tensors.get('layers.0.w2')!.shape, [16, 24]);
  for (const [name, want] of expected) assert.ok(bitEqual(weights.tensors.get(name)!.data, want), `${name} differs`);
  assert.ok(tokenizer !== null);
  assert.is(tokenizer!.bosId, BOS);
  assert.is(tokenizer!.eosId, EOS);
});

test('qwen2: sharded over two files, tied embeddings, Q/K/V biases, BOS from config.json', async () => {
  const dir = await freshDir();
  const expected = await writeFolder(dir, {
    config: {
      architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', ...TINY, rope_theta: 1000000, tie_word_embeddings: true,
      sliding_window: 32, use_sliding_window: false, bos_token_id: 263, eos_token_id: 264, hidden_act: 'silu',
    },
    dtypeOf: (n) => (n.endsWith('bias') ? 'F32' : 'BF16'),
    sharded: true,
    tokenizer: 'plain',
  });
  const checkpoint = await openSafetensors(dir);
  assert.is(checkpoint.files.length, 2);
  const { config, weights, tokenizer } = await loadHfFolder(dir);
  assert.is(config.architecture, 'qwen2');
  assert.ok(config.tiedEmbeddings);
  assert.ok(config.qkvBias);
  assert.is(config.maxSeqLen, 128); // use_sliding_window false: no cap
  assert.is(config.ropeTheta, 1000000);
  assert.not.ok(weights.tensors.has('output'));
  assert.equal(weights.tensors.get('layers.1.bk')!.shape, [8]);
  assert.is(weights.tensors.size, expected.size);
  for (const [name, want] of expected) assert.ok(bitEqual(weights.tensors.get(name)!.data, want), `${name} differs`);
  // No tokenizer_config.json and a ByteLevel post-processor: no BOS added, ids from config.json.
  assert.is(tokenizer!.bosId, 263);
  assert.not.ok(tokenizer!.addBos);
  assert.equal(tokenizer!.encode('the cat'), [257, 262]);
});

test('tied embeddings: a stored lm_head.weight is not read; untied needs it', async () => {
  const dir = await freshDir();
  const lm = randomTensor('lm_head.weight', 'F32', [272, 16], rng(3)).raw;
  await writeFolder(dir, { config: { ...LLAMA_CONFIG, tie_word_embeddings: true }, extraTensors: [lm] });
  const { weights, tokenizer } = await loadHfFolder(dir);
  assert.not.ok(weights.tensors.has('output'));
  assert.is(tokenizer, null);
});

test('mistral: active sliding window caps maxSeqLen; linear rope_scaling by "type"; no tokenizer', async () => {
  const dir = await freshDir();
  await writeFolder(dir, {
    config: {
      architectures: ['MistralForCausalLM'], model_type: 'mistral', ...TINY, num_key_value_heads: 1, sliding_window: 64,
      rope_scaling: { type: 'linear', factor: 2 }, bos_token_id: 1, eos_token_id: 2,
    },
  });
  const { config, tokenizer } = await loadHfFolder(dir);
  assert.is(config.architecture, 'mistral');
  assert.is(config.maxSeqLen, 64);
  assert.is(config.nKvHeads, 1);
  assert.is(config.ropeTheta, 10000);
  assert.equal(config.ropeScaling, { type: 'linear', factor: 2 });
  assert.is(config.bosId, 1);
  assert.is(tokenizer, null);
});

test('hfConfig: defaults (kv heads, head_dim, rope) and explicit head_dim', () => {
  const base = { model_type: 'llama', ...TINY, num_key_value_heads: undefined };
  const c = hfConfig(base, 'c.json').config;
  assert.is(c.nKvHeads, 4);
  assert.is(c.headDim, 4);
  assert.is(c.ropeTheta, 10000);
  assert.is(c.ropeScaling, null);
  assert.not.ok(c.tiedEmbeddings);
  assert.is(hfConfig({ ...base, head_dim: 8, attention_bias: true }, 'c.json').config.headDim, 8);
  assert.ok(hfConfig({ ...base, attention_bias: true }, 'c.json').config.qkvBias);
  assert.is(hfConfig({ ...base, rope_scaling: { rope_type: 'default' } }, 'c.json').config.ropeScaling, null);
  const r = hfConfig({ ...base, rope_parameters: { rope_type: 'linear', factor: 4, rope_theta: 5000 } }, 'c.json').config;
  assert.is(r.ropeTheta, 5000);
  assert.equal(r.ropeScaling, { type: 'linear', factor: 4 });
  // transformers 5 writes rope_theta and the scaling inside rope_parameters.
  const v5 = hfConfig({
    ...base,
    rope_parameters: { factor: 8.0, high_freq_factor: 4.0, low_freq_factor: 1.0, original_max_position_embeddings: 128, rope_theta: 500000.0, rope_type: 'llama3' },
  }, 'c.json').config;
  assert.is(v5.ropeTheta, 500000);
  assert.equal(v5.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 128 });
  const ids = hfConfig({ ...base, bos_token_id: 5, eos_token_id: [9, 10] }, 'c.json');
  assert.is(ids.bosId, 5);
  assert.is(ids.eosId, 9);
});

// ---------------------------------------------------------------------------------------------
// Tokenizer

test('HfTokenizer: exact BPE ids, BOS/EOS options, decode round trip', async () => {
  const dir = await freshDir();
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(tokenizerJson(true)));
  await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(LLAMA_TOKENIZER_CONFIG));
  const tok = await HfTokenizer.load(dir);
  const asInterface: Tokenizer = tok;
  assert.is(asInterface.vocabSize, TOKENIZER_VOCAB);
  assert.is(tok.bosId, BOS);
  assert.is(tok.eosId, EOS);
  assert.ok(tok.addBos);
  assert.not.ok(tok.addEos);
  // "the" merges h+e first, then t+he; " the" therefore ends as "Ġ" + "the" (Ġt+he never applies).
  assert.equal(tok.encode('the cat the'), [BOS, 257, 262, 32, 257]);
  assert.equal(tok.encode('the cat the', { bos: false, eos: true }), [257, 262, 32, 257, EOS]);
  assert.equal(tok.encode(''), [BOS]);
  assert.equal(tok.encode('</s>x', { bos: false }), [EOS, 120]);
  for (const text of ['the cat the', 'Hello, world! héllo wörld ✓ 日本', '  two  spaces\nand a tab\t.', 'a . b , c']) {
    assert.is(tok.decode(tok.encode(text)), text);
    assert.is(tok.decode(tok.encode(text, { eos: true })), text);
  }
  assert.is(tok.decode([]), '');
  assert.is(tok.decode([BOS, EOS]), '');
  assert.throws(() => tok.decode([TOKENIZER_VOCAB]), (e: unknown) => e instanceof RangeError && /token id 265/.test((e as Error).message));
  assert.throws(() => tok.decode([1.5]), RangeError);
  // Loading tokenizer.json by file path reads the tokenizer_config.json beside it.
  const byFile = await HfTokenizer.load(join(dir, 'tokenizer.json'));
  assert.ok(byFile.addBos);
});

test('HfTokenizer: BOS/EOS from the template, else fallbacks, else a typed error', () => {
  const t = HfTokenizer.fromJson(tokenizerJson(true), null, { fallbackEosId: EOS });
  assert.is(t.bosId, BOS);
  assert.ok(t.addBos);
  assert.throws(() => HfTokenizer.fromJson(tokenizerJson(true), null, { source: 'x/tokenizer.json' }), (e: unknown) => e instanceof ModelFormatError && /x\/tokenizer\.json: names no EOS/.test((e as Error).message));
  const p = HfTokenizer.fromJson(tokenizerJson(false), null, { fallbackBosId: 1, fallbackEosId: EOS });
  assert.is(p.bosId, 1);
  assert.not.ok(p.addBos);
  assert.throws(() => HfTokenizer.fromJson(tokenizerJson(false), { bos_token: '<nope>' }, { fallbackEosId: 2 }), /bos_token "<nope>" is not in the vocabulary/);
  assert.throws(() => HfTokenizer.fromJson({ model: { type: 'Nope', vocab: 3 } }, null, { source: 'y.json' }), (e: unknown) => e instanceof ModelFormatError && /y\.json: tokenizer model type "Nope" is not supported/.test((e as Error).message));
  assert.throws(() => HfTokenizer.fromJson({ model: { type: 'BPE', vocab: { a: 0 } } }, null, { source: 'y.json' }), (e: unknown) => e instanceof ModelFormatError && /y\.json: @huggingface\/tokenizers rejected it/.test((e as Error).message));
});

// ---------------------------------------------------------------------------------------------
// Bad inputs: every one a typed error naming the file and the problem

async function expectError(run: () => Promise<unknown>, file: string, problem: RegExp, cls: abstract new (...a: never[]) => KvlabError = ModelFormatError): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${(e as Error).stack ?? String(e)}`);
    const msg = (e as Error).message;
    assert.ok(msg.includes(file), `message does not name ${file}: ${msg}`);
    assert.match(msg, problem);
    return;
  }
  throw new Error(`expected a ${cls.name} matching ${problem}`);
}

test('safetensors: bad files give ModelFormatError naming the file and the problem', async () => {
  const good = [
    { name: 'w', dtype: 'F32', shape: [2, 3], bytes: new Uint8Array(24).fill(1) },
    { name: 'b', dtype: 'BF16', shape: [4], bytes: new Uint8Array(8).fill(2) },
  ];
  const ok = safetensorsBytes(good);
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['tiny', ok.subarray(0, 5), /truncated: a safetensors file starts with an 8-byte header length/],
    ['truncated', ok.subarray(0, ok.length - 3), /truncated: tensor b needs bytes 24\.\.32 of the data section but the file holds only 29/],
    ['header-past-end', (() => { const b = ok.slice(); new DataView(b.buffer).setBigUint64(0, BigInt(b.length), true); return b; })(), /header length \d+ runs past the end of the file/],
    ['bad-json', (() => { const b = ok.slice(); b[9] = 0x3a; return b; })(), /header is not valid JSON/],
    ['not-object', rawHeader('[1, 2]'), /does not start with "\{"/],
    ['unknown-dtype', safetensorsBytes(good, { edit: (h) => ((h.w as { dtype: string }).dtype = 'F12') }), /tensor w has unknown dtype "F12"/],
    ['shape-mismatch', safetensorsBytes(good, { edit: (h) => ((h.w as { shape: number[] }).shape = [2, 4]) }), /tensor w: F32 shape \[2, 4\] needs 32 bytes but data_offsets \[0, 24\] span 24/],
    ['offsets-beyond', safetensorsBytes(good, { edit: (h) => ((h.b as { data_offsets: number[] }).data_offsets = [40, 48]) }), /tensor b needs bytes 40\.\.48 of the data section/],
    ['overlap', safetensorsBytes(good, { edit: (h) => { (h.b as { data_offsets: number[] }).data_offsets = [16, 24]; } }), /tensors w and b overlap/],
    ['hole', safetensorsBytes([good[0]!, { ...good[1]!, shape: [2], bytes: new Uint8Array(6) }], { edit: (h) => ((h.b as { data_offsets: number[] }).data_offsets = [26, 30]) }), /bytes 24\.\.26 of the data section belong to no tensor/],
    ['bad-offsets', safetensorsBytes(good, { edit: (h) => ((h.b as { data_offsets: unknown }).data_offsets = [24]) }), /tensor b: data_offsets must be two non-negative integers/],
    ['bad-metadata', safetensorsBytes(good, { edit: (h) => (h.__metadata__ = { n: 1 }) }), /__metadata__ must be an object of strings/],
  ];
  for (const [name, bytes, problem] of cases) {
    const path = join(tmp, `bad-${name}.safetensors`);
    await writeFile(path, bytes);
    await expectError(() => loadSafetensors(path), path, problem);
    await expectError(async () => parseSafetensors(bytes, path), path, problem);
  }
  // Known but unloadable dtype: the header is fine, loading names the tensor and dtype.
  const i64 = join(tmp, 'i64.safetensors');
  await writeFile(i64, safetensorsBytes([{ name: 'ids', dtype: 'I64', shape: [2], bytes: new Uint8Array(16) }]));
  assert.is((await readSafetensorsHeader(i64)).tensors.get('ids')!.dtype, 'I64');
  await expectError(() => loadSafetensors(i64), i64, /tensor ids has dtype I64, which kvlab does not load/);
  assert.throws(() => decodeSafetensorsData({ name: 'x', dtype: 'F32', shape: [2], offset: 0, byteLength: 8 }, new Uint8Array(4), 's'), /expected 8 bytes but received 4/);
  await expectError(() => loadSafetensors(join(tmp, 'nope.safetensors')), 'nope.safetensors', /cannot open/);
});

test('safetensors: every truncation and random corruption is parsed or fails with ModelFormatError', () => {
  const rand = rng(17);
  const bytes = safetensorsBytes([randomTensor('a', 'F32', [3, 5], rand).raw, randomTensor('b', 'BF16', [7], rand).raw, randomTensor('c', 'F16', [2, 2], rand).raw]);
  const check = (b: Uint8Array, what: string): void => {
    try {
      parseSafetensors(b, 'fuzz.safetensors');
    } catch (e) {
      if (!(e instanceof ModelFormatError) || !e.message.startsWith('fuzz.safetensors: ')) throw new Error(`${what}: ${(e as Error).stack ?? String(e)}`);
    }
  };
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => parseSafetensors(bytes.subarray(0, n), 'cut.safetensors'), (e: unknown) => e instanceof ModelFormatError, `cut at ${n}`);
  }
  for (let k = 0; k < 2000; k++) {
    const b = bytes.slice();
    const n = 1 + Math.floor(rand() * 3);
    for (let j = 0; j < n; j++) b[Math.floor(rand() * Math.min(b.length, 120))] = Math.floor(rand() * 256);
    check(b, `corruption ${k}`);
  }
});

function rawHeader(json: string): Uint8Array {
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.length), true);
  out.set(hb, 8);
  return out;
}

test('HF folders: bad inputs give typed errors naming the file and the problem', async () => {
  // Missing folder, missing config.json, bad JSON.
  await expectError(() => loadHfFolder(join(tmp, 'no-such-folder')), 'no-such-folder', /no such model folder/, NotFoundError);
  const empty = await freshDir();
  await expectError(() => loadHfFolder(empty), join(empty, 'config.json'), /not found/);
  const badJson = await freshDir();
  await writeFile(join(badJson, 'config.json'), '{"model_type": "llama",');
  await expectError(() => loadHfFolder(badJson), join(badJson, 'config.json'), /not valid JSON/);

  // Unknown architectures.
  for (const [cfg, problem] of [
    [{ ...LLAMA_CONFIG, model_type: 'gpt2', architectures: ['GPT2LMHeadModel'] }, /unsupported architecture: model_type "gpt2", architectures \["GPT2LMHeadModel"\]/],
    [{ ...LLAMA_CONFIG, architectures: ['LlamaForSequenceClassification'] }, /unsupported architecture LlamaForSequenceClassification/],
    [{ ...LLAMA_CONFIG, rope_scaling: { rope_type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not supported/],
    [{ ...LLAMA_CONFIG, hidden_size: undefined }, /missing hidden_size/],
    [{ ...LLAMA_CONFIG, num_key_value_heads: 3 }, /invalid config: config\.nKvHeads/],
    [{ ...LLAMA_CONFIG, quantization_config: { quant_method: 'gptq' } }, /quantized checkpoints \(quantization_config "gptq"\)/],
  ] as const) {
    const d = await freshDir();
    await writeFile(join(d, 'config.json'), JSON.stringify(cfg));
    await expectError(() => loadHfFolder(d), join(d, 'config.json'), problem);
  }

  // No weights at all.
  const noWeights = await freshDir();
  await writeFile(join(noWeights, 'config.json'), JSON.stringify(LLAMA_CONFIG));
  await expectError(() => loadHfFolder(noWeights), noWeights, /no model\.safetensors\.index\.json or model\.safetensors/);

  // Missing tensor, wrong shape, unexpected tensor: from the headers, before any data is read.
  const missing = await freshDir();
  await writeFolder(missing, { config: LLAMA_CONFIG });
  const full = parseSafetensors(await readFileBytes(join(missing, 'model.safetensors')), 'x').tensors;
  const rewrite = async (dir: string, f: (t: RawTensor[]) => RawTensor[]): Promise<string> => {
    const list: RawTensor[] = [...full].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, bytes: new Uint8Array(t.data.slice().buffer) }));
    const path = join(dir, 'model.safetensors');
    await writeFile(path, safetensorsBytes(f(list)));
    return path;
  };
  let p = await rewrite(missing, (l) => l.filter((t) => t.name !== 'model.layers.1.mlp.up_proj.weight'));
  await expectError(() => loadHfFolder(missing), p, /missing tensor model\.layers\.1\.mlp\.up_proj\.weight \(expected shape \[24, 16\]\)/);
  p = await rewrite(missing, (l) => l.map((t) => (t.name === 'model.norm.weight' ? { ...t, shape: [4, 4] } : t)));
  await expectError(() => loadHfFolder(missing), p, /tensor model\.norm\.weight has shape \[4, 4\] but config\.json calls for \[16\]/);
  p = await rewrite(missing, (l) => [...l, { name: 'model.layers.0.self_attn.o_proj.bias', dtype: 'F32', shape: [16], bytes: new Uint8Array(64) }]);
  await expectError(() => loadHfFolder(missing), p, /unexpected tensor model\.layers\.0\.self_attn\.o_proj\.bias/);
  p = await rewrite(missing, (l) => [...l, { name: 'model.layers.2.input_layernorm.weight', dtype: 'F32', shape: [16], bytes: new Uint8Array(64) }]);
  await expectError(() => loadHfFolder(missing), p, /unexpected tensor model\.layers\.2\.input_layernorm\.weight for this config \(2 layers/);
  p = await rewrite(missing, (l) => l.map((t) => (t.name === 'model.norm.weight' ? { ...t, dtype: 'I32' } : t)));
  await expectError(() => loadHfFolder(missing), p, /tensor model\.norm\.weight has dtype I32, which kvlab does not load/);

  // Sharded: a shard missing, a listed tensor missing from its shard, a tensor in two shards.
  const sharded = await freshDir();
  await writeFolder(sharded, { config: LLAMA_CONFIG, sharded: true });
  const index = join(sharded, 'model.safetensors.index.json');
  const weightMap = JSON.parse(await readFileText(index)).weight_map as Record<string, string>;
  const writeIndex = (m: Record<string, string>) => writeFile(index, JSON.stringify({ weight_map: m }));
  await writeIndex({ ...weightMap, 'model.norm.weight': 'model-00003-of-00002.safetensors' });
  await expectError(() => loadHfFolder(sharded), join(sharded, 'model-00003-of-00002.safetensors'), /not found \(listed as a shard in/);
  const shard1 = 'model-00001-of-00002.safetensors';
  const inShard2 = Object.keys(weightMap).find((n) => weightMap[n] !== shard1)!;
  await writeIndex({ ...weightMap, [inShard2]: shard1 });
  await expectError(() => loadHfFolder(sharded), join(sharded, shard1), new RegExp(`missing tensor ${inShard2.replaceAll('.', '\\.')}, which .* places in this shard`));
  const rest = { ...weightMap };
  delete rest['model.embed_tokens.weight'];
  await writeIndex(rest);
  await expectError(() => loadHfFolder(sharded), shard1, /tensor model\.embed_tokens\.weight is not listed in/);
  await writeIndex({ ...weightMap, x: '../escape.safetensors' });
  await expectError(() => loadHfFolder(sharded), index, /outside the checkpoint's folder/);
  // The same tensor stored in both shards.
  await writeIndex(weightMap);
  const s2 = join(sharded, 'model-00002-of-00002.safetensors');
  const shard2 = parseSafetensors(await readFileBytes(s2), s2).tensors;
  const dup = [...shard2].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape, bytes: new Uint8Array(t.data.slice().buffer) }));
  dup.push({ name: 'model.embed_tokens.weight', dtype: 'F32', shape: [1], bytes: new Uint8Array(4) });
  await writeFile(s2, safetensorsBytes(dup));
  await expectError(() => loadHfFolder(sharded), s2, /tensor model\.embed_tokens\.weight appears here and in .*model-00001-of-00002\.safetensors/);

  // A tokenizer larger than the model's vocabulary; a broken tokenizer.json.
  const bigTok = await freshDir();
  await writeFolder(bigTok, { config: { ...LLAMA_CONFIG, vocab_size: 264, bos_token_id: 1, eos_token_id: 2 }, tokenizer: 'plain' });
  await expectError(() => loadHfFolder(bigTok), join(bigTok, 'tokenizer.json'), /tokenizer has 265 tokens but config\.json's vocab_size is 264/);
  const badTok = await freshDir();
  await writeFolder(badTok, { config: LLAMA_CONFIG });
  await writeFile(join(badTok, 'tokenizer.json'), '{"model": ');
  await expectError(() => loadHfFolder(badTok), join(badTok, 'tokenizer.json'), /not valid JSON/);
});

test('typed errors share kvlab codes', async () => {
  try {
    await loadSafetensors(join(tmp, 'nope.safetensors'));
  } catch (e) {
    assert.ok(e instanceof FormatError);
    assert.is((e as FormatError).code, 'KVLAB_FORMAT');
    assert.is((e as ModelFormatError).path, join(tmp, 'nope.safetensors'));
    return;
  }
  assert.unreachable();
});

async function readFileBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await readFile(path));
}

async function readFileText(path: string): Promise<string> {
  return readFile(path, 'utf8');
}

test.run();
