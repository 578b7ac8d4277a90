// Model file loaders (src/model): llama2.c checkpoint + tokenizer, GGUF, configs, typed errors.
// Uses the shared stories260K files in place (../shared/models from the repo root).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, openSync, statSync, writeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig, type ModelConfig } from '../src/model/config.js';
import { ModelConfigError, ModelFormatError } from '../src/model/errors.js';
import {
  ggufConfig,
  ggufTensorData,
  ggufTokenizer,
  ggufWeights,
  loadGguf,
  parseGguf,
  readGguf,
  type GgufFile,
  type GgufValue,
  type GgufValueType,
} from '../src/model/gguf.js';
import { Llama2cTokenizer, loadLlama2c, parseLlama2c } from '../src/model/llama2c.js';
import { expectedTensorShapes, ropePairsToHalves } from '../src/model/weights.js';
import { rng } from './support/reference.js';

const MODELS = fileURLToPath(new URL('../../shared/models/', import.meta.url));
const BIN = join(MODELS, 'stories260K.bin');
const GGUF = join(MODELS, 'stories260K.gguf');
const TOK = join(MODELS, 'tok512.bin');
const FIXTURE = fileURLToPath(new URL('./fixtures/llama2c-stories260K.json', import.meta.url));

let tmp = '';
test.before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'kvlab-model-'));
});
test.after(async () => {
  if (tmp !== '') await rm(tmp, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Configs and weights

test('llama2.c: stories260K config', async () => {
  const w = await loadLlama2c(BIN);
  const expected: ModelConfig = {
    architecture: 'llama', dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 8,
    vocabSize: 512, maxSeqLen: 512, normEps: 1e-5, ropeTheta: 10000, ropeScaling: null,
    tiedEmbeddings: true, qkvBias: false, bosId: 1, eosId: 2,
  };
  assert.equal(w.config, expected);
  assert.is(w.tensors.size, expectedTensorShapes(w.config).size);
  assert.equal(w.tensors.get('layers.4.w2')!.shape, [64, 172]);
  assert.equal(w.tensors.get('layers.0.wk')!.shape, [32, 64]);
  assert.not.ok(w.tensors.has('output'));
});

test('llama2.c: tensors are views into the file bytes, except the permuted wq/wk', async () => {
  const bytes = await readFile(BIN);
  const w = parseLlama2c(bytes, BIN);
  const emb = w.tensors.get('tok_embeddings')!.data;
  assert.is(emb.buffer, bytes.buffer);
  assert.is(emb.byteOffset, bytes.byteOffset + 28);
  assert.is(emb[0], bytes.readFloatLE(28));
  assert.is(w.tensors.get('layers.3.w3')!.data.buffer, bytes.buffer);
  assert.is.not(w.tensors.get('layers.0.wq')!.data.buffer, bytes.buffer);
  // wq of layer 0 starts after the embedding and rms_att; row j of head h comes from the stored
  // row 2j (j < 4) or 2(j - 4) + 1 of that head.
  const wqOff = 28 + 4 * (512 * 64 + 5 * 64);
  const wq = w.tensors.get('layers.0.wq')!.data;
  for (const [h, j] of [[0, 0], [0, 3], [0, 4], [0, 7], [5, 1], [7, 6]] as const) {
    const src = h * 8 + (j < 4 ? 2 * j : 2 * (j - 4) + 1);
    for (let c = 0; c < 64; c += 9) assert.is(wq[(h * 8 + j) * 64 + c], bytes.readFloatLE(wqOff + 4 * (src * 64 + c)));
  }
});

test('GGUF: stories260K config equals the llama2.c one apart from maxSeqLen', async () => {
  const g = await loadGguf(GGUF);
  const b = await loadLlama2c(BIN);
  assert.is(g.file.version, 3);
  assert.is(g.file.alignment, 32);
  assert.is(g.weights.config.maxSeqLen, 2048);
  assert.is(b.config.maxSeqLen, 512);
  assert.equal({ ...g.weights.config, maxSeqLen: 0 }, { ...b.config, maxSeqLen: 0 });
  // The f32 metadata epsilon is exactly the float32 nearest 1e-5.
  assert.is(g.file.metadata.get('llama.attention.layer_norm_rms_epsilon'), Math.fround(1e-5));
});

test('GGUF vs llama2.c: identical tensors after both RoPE permutations', async () => {
  const g = (await loadGguf(GGUF)).weights;
  const b = await loadLlama2c(BIN);
  assert.equal([...g.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  for (const [name, t] of b.tensors) {
    const u = g.tensors.get(name)!;
    assert.equal(u.shape, t.shape, name);
    assert.ok(bitEqual(u.data, t.data), `${name} differs`);
  }
});

test('GGUF larger than 2 GiB (a sparse file, tensors beyond 3 GiB) loads tensor by tensor, equal to the small file', async () => {
  const file = await readGguf(GGUF);
  const path = join(tmp, 'stories260K-huge.gguf');
  const size = writeGgufSparse(path, metaOf(file), tensorsOf(file), 3 * 2 ** 30);
  assert.ok(size > 3 * 2 ** 30 && statSync(path).size === size);
  const big = (await loadGguf(path)).weights;
  const small = (await loadGguf(GGUF)).weights;
  for (const [name, t] of small.tensors) assert.ok(bitEqual(big.tensors.get(name)!.data, t.data), `${name} differs`);
  // Cut inside the data: a typed truncation error naming the tensor, not a crash or a short read.
  const cut = join(tmp, 'stories260K-huge-cut.gguf');
  writeGgufSparse(cut, metaOf(file), tensorsOf(file), 3 * 2 ** 30);
  const fd = openSync(cut, 'r+');
  try {
    const { ftruncateSync } = await import('node:fs');
    ftruncateSync(fd, size - 100);
  } finally {
    closeSync(fd);
  }
  try {
    await loadGguf(cut);
    assert.unreachable('truncated file loaded');
  } catch (e) {
    assert.ok(e instanceof ModelFormatError && /truncated: tensor/.test(e.message), String(e));
  }
});

test('RoPE permutation: halves RoPE on permuted weights gives the same q.k as pair RoPE on stored weights', async () => {
  const file = await readGguf(GGUF);
  const w = ggufWeights(file);
  const { nHeads, nKvHeads, headDim: d, dim, ropeTheta } = w.config;
  const rand = rng(7);
  const x = Array.from({ length: dim }, () => rand() * 2 - 1);
  const y = Array.from({ length: dim }, () => rand() * 2 - 1);
  for (let layer = 0; layer < w.config.nLayers; layer++) {
    const qRaw = matVec(ggufTensorData(file, `blk.${layer}.attn_q.weight`), x, dim);
    const kRaw = matVec(ggufTensorData(file, `blk.${layer}.attn_k.weight`), y, dim);
    const qHalf = matVec(w.tensors.get(`layers.${layer}.wq`)!.data, x, dim);
    const kHalf = matVec(w.tensors.get(`layers.${layer}.wk`)!.data, y, dim);
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / (nHeads / nKvHeads));
      const qa = ropePairs(qRaw.slice(h * d, (h + 1) * d), 37, ropeTheta);
      const ka = ropePairs(kRaw.slice(kh * d, (kh + 1) * d), 11, ropeTheta);
      const qb = ropeHalves(qHalf.slice(h * d, (h + 1) * d), 37, ropeTheta);
      const kb = ropeHalves(kHalf.slice(kh * d, (kh + 1) * d), 11, ropeTheta);
      const sa = dot(qa, ka);
      const sb = dot(qb, kb);
      assert.ok(Math.abs(sa - sb) <= 1e-12 * (1 + Math.abs(sa)), `layer ${layer} head ${h}: ${sa} vs ${sb}`);
    }
  }
});

test('ropePairsToHalves: row order for one head and for a bias', () => {
  const rows = Float32Array.from({ length: 8 * 2 }, (_, k) => k);
  const out = ropePairsToHalves(rows, 1, 8, 2);
  const order = Array.from({ length: 8 }, (_, j) => out[2 * j]! / 2);
  assert.equal(order, [0, 2, 4, 6, 1, 3, 5, 7]);
  assert.equal([...ropePairsToHalves(Float32Array.of(0, 1, 2, 3, 10, 11, 12, 13), 2, 4, 1)], [0, 2, 1, 3, 10, 12, 11, 13]);
  assert.throws(() => ropePairsToHalves(new Float32Array(12), 1, 6, 1), /ropePairsToHalves/);
});

test('validateConfig: names the bad field', async () => {
  const base = (await loadLlama2c(BIN)).config;
  const cases: Array<[Partial<Record<string, unknown>>, string]> = [
    [{ architecture: 'gpt2' }, 'architecture'],
    [{ dim: 0 }, 'dim'],
    [{ hiddenDim: 1.5 }, 'hiddenDim'],
    [{ nKvHeads: 3 }, 'nKvHeads'],
    [{ headDim: 7 }, 'headDim'],
    [{ normEps: -1 }, 'normEps'],
    [{ ropeTheta: Number.NaN }, 'ropeTheta'],
    [{ ropeScaling: { type: 'yarn', factor: 4 } }, 'ropeScaling.type'],
    [{ ropeScaling: { type: 'linear', factor: 0 } }, 'ropeScaling.factor'],
    [{ ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 4, highFreqFactor: 1, originalMaxPositionEmbeddings: 8192 } }, 'ropeScaling.highFreqFactor'],
    [{ tiedEmbeddings: 'yes' }, 'tiedEmbeddings'],
    [{ bosId: 512 }, 'bosId'],
    [{ eosId: -1 }, 'eosId'],
  ];
  for (const [patch, field] of cases) {
    try {
      validateConfig({ ...base, ...patch } as ModelConfig);
      assert.unreachable(`no error for ${field}`);
    } catch (e) {
      assert.instance(e, ModelConfigError);
      assert.is((e as ModelConfigError).field, field);
      assert.is((e as ModelConfigError).code, 'KVLAB_ARG');
      assert.ok((e as Error).message.includes(`config.${field}`), (e as Error).message);
    }
  }
  const llama3: ModelConfig = { ...base, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } };
  assert.is(validateConfig(llama3), llama3);
});

// ---------------------------------------------------------------------------------------------
// Tokenizers

interface FixtureCase { prompt: string; promptTokens: number[]; generatedTokens: number[]; text: string }

test('llama2.c tokenizer: encodes and decodes as run.c (recorded fixture)', async () => {
  const tok = await Llama2cTokenizer.load(TOK, { vocabSize: 512 });
  const fixture = JSON.parse(await readFile(FIXTURE, 'utf8')) as { cases: FixtureCase[] };
  assert.ok(fixture.cases.length >= 4);
  for (const c of fixture.cases) {
    assert.equal(tok.encode(c.prompt, { bos: true, eos: false }), c.promptTokens, c.prompt);
    assert.is(tok.decode([...c.promptTokens, ...c.generatedTokens]), c.text);
  }
  assert.equal(tok.encode('Once upon a time', { bos: false, eos: true }), [403, 407, 261, 378, 2]);
  assert.equal(tok.encode(''), [1]);
  assert.equal(tok.encode('', { bos: false }), []);
});

test('llama2.c tokenizer: byte fallback and round trips', async () => {
  const tok = await Llama2cTokenizer.load(TOK);
  assert.is(tok.vocabSize, 512);
  assert.is(tok.maxTokenLength, 7);
  // '🦙' is not in the 512-token vocabulary: four byte tokens <0xF0><0x9F><0xA6><0x99>, id = byte + 3.
  const ids = tok.encode('🦙', { bos: false });
  assert.equal(ids.slice(-4), [0xf0 + 3, 0x9f + 3, 0xa6 + 3, 0x99 + 3]);
  for (const s of ['Once upon a time', ' leading space', 'two  spaces\tand\ttabs\n\nnewlines', 'héllo wörld 中文 🦙 \u200a!', 'x', ' ', '~]', 'Lily\'s "ball"']) {
    assert.is(tok.decode(tok.encode(s, { bos: true, eos: true })), s, JSON.stringify(s));
  }
  // run.c reads a C string: text after a NUL is ignored.
  assert.equal(tok.encode('ab\u0000cd'), tok.encode('ab'));
  assert.equal([...tok.decodePiece(1, 403)], [...new TextEncoder().encode('Once')]);
  assert.equal([...tok.decodePiece(403, 403)], [...new TextEncoder().encode(' Once')]);
  assert.throws(() => tok.decode([1, 512]), /token id 512/);
});

test('llama2.c tokenizer: heap merge equals the naive run.c loop on random text', async () => {
  const tok = await Llama2cTokenizer.load(TOK);
  const rand = rng(12345);
  const alphabet = ['a', 'e', 't', 'h', 'o', 'n', 's', ' ', ' ', ' the', ' and', 'ing', 'ed', '.', ',', '\n', '"', 'é', '中', '🦙', '\u200a', 'Q', 'z', 'x', '\u00a0', '\t', ' ', 'Lily', ' was', 'o', 'oo', 'l', 'll', 'p', 'pp'];
  for (let n = 0; n < 300; n++) {
    const len = Math.floor(rand() * 40);
    let s = '';
    for (let k = 0; k < len; k++) s += alphabet[Math.floor(rand() * alphabet.length)];
    const bos = rand() < 0.7;
    assert.equal(tok.encode(s, { bos, eos: false }), naiveRunCEncode(tok, s, bos), JSON.stringify(s));
  }
  // Equal-score candidates (the same pair twice) merge leftmost first.
  for (const s of ['ooo', 'oooooo', 'llll', 'ppppp', ' oo ooo oooo', 'llllpppoooo']) {
    assert.equal(tok.encode(s), naiveRunCEncode(tok, s, true), s);
  }
  const fixture = JSON.parse(await readFile(FIXTURE, 'utf8')) as { cases: FixtureCase[] };
  const long = fixture.cases[2]!.text;
  assert.equal(tok.encode(long), naiveRunCEncode(tok, long, true));
});

test('GGUF tokenizer: same pieces, scores and ids as tok512.bin', async () => {
  const g = await loadGguf(GGUF);
  const gt = g.tokenizer!;
  const bt = await Llama2cTokenizer.load(TOK);
  assert.is(gt.vocabSize, bt.vocabSize);
  assert.is(gt.maxTokenLength, bt.maxTokenLength);
  assert.is(gt.bosId, 1);
  assert.is(gt.eosId, 2);
  for (let id = 0; id < bt.vocabSize; id++) {
    assert.equal([...gt.pieces[id]!], [...bt.pieces[id]!], `piece ${id}`);
    assert.ok(gt.scores[id] === bt.scores[id], `score ${id}`);
  }
  for (const s of ['Once upon a time', 'The little dog was sad because', '', 'héllo 🦙', ' a  b ', 'Tom said, "OK!"\n']) {
    assert.equal(gt.encode(s, { bos: true, eos: true }), bt.encode(s, { bos: true, eos: true }), JSON.stringify(s));
  }
});

// ---------------------------------------------------------------------------------------------
// GGUF container details

test('GGUF: writing the parsed file back reproduces it byte for byte', async () => {
  const bytes = await readFile(GGUF);
  const file = parseGguf(bytes, GGUF);
  assert.is(file.tensors.size, 48);
  assert.is(file.metadata.get('general.architecture'), 'llama');
  assert.instance(file.metadata.get('tokenizer.ggml.scores'), Float32Array);
  const again = writeGguf(metaOf(file), tensorsOf(file));
  assert.is(again.length, bytes.length);
  assert.ok(Buffer.from(again).equals(bytes));
});

test('GGUF: F16, BF16 and Q8_0 decoding of known bit patterns', () => {
  const f16 = u16bytes([0x3c00, 0xc000, 0x7bff, 0x0001, 0x8400, 0x3555, 0x7c00, 0x0000]);
  const bf16 = u16bytes([0x3f80, 0xc049, 0x0001, 0x7f80]);
  const q8 = new Uint8Array(34 * 2);
  const dv = new DataView(q8.buffer);
  dv.setUint16(0, 0x3800, true); // d = 0.5
  dv.setUint16(34, 0xb400, true); // d = -0.25
  for (let j = 0; j < 32; j++) {
    dv.setInt8(2 + j, j * 8 - 128);
    dv.setInt8(36 + j, 127 - j);
  }
  const file = parseGguf(writeGguf([], [
    { name: 'a', ne: [8], type: 1, data: f16 },
    { name: 'b', ne: [4], type: 30, data: bf16 },
    { name: 'c', ne: [32, 2], type: 8, data: q8 },
  ]), 'synthetic.gguf');
  assert.equal([...ggufTensorData(file, 'a')], [1, -2, 65504, 2 ** -24, -(2 ** -14), Math.fround(0.333251953125), Infinity, 0]);
  assert.equal([...ggufTensorData(file, 'b')], [1, -3.140625, new Float32Array(new Uint32Array([0x00010000]).buffer)[0]!, Infinity]);
  const c = ggufTensorData(file, 'c');
  for (let j = 0; j < 32; j++) {
    assert.is(c[j], 0.5 * (j * 8 - 128));
    assert.is(c[32 + j], -0.25 * (127 - j));
  }
});

test('GGUF: a model stored as F16 / BF16 / Q8_0 loads within each type\'s error bound', async () => {
  const file = await readGguf(GGUF);
  const ref = ggufWeights(file);
  const variants: Array<[string, number, (ne: number[], x: Float32Array) => Uint8Array | null, number]> = [
    ['F16', 1, (_ne, x) => u16bytes(Array.from(x, f32ToF16)), 2 ** -11],
    ['BF16', 30, (_ne, x) => u16bytes(Array.from(x, f32ToBf16)), 2 ** -8],
    ['Q8_0', 8, (ne, x) => (ne.length === 2 && ne[0]! % 32 === 0 ? quantizeQ80(x) : null), 0],
  ];
  for (const [label, type, encode, relBound] of variants) {
    const tensors = tensorsOf(file).map((t) => {
      if (t.ne.length < 2) return t; // norms stay F32, as llama.cpp keeps them
      const data = encode(t.ne, ggufTensorData(file, t.name));
      return data === null ? t : { ...t, type, data };
    });
    const path = join(tmp, `stories260K-${label}.gguf`);
    await writeFile(path, writeGguf(metaOf(file), tensors));
    const w = (await loadGguf(path)).weights;
    assert.equal({ ...w.config }, { ...ref.config }, label);
    for (const [name, t] of ref.tensors) {
      const u = w.tensors.get(name)!;
      assert.equal(u.shape, t.shape);
      const cols = t.shape[t.shape.length - 1]!;
      for (let r = 0; r < t.data.length / cols; r++) {
        const row = t.data.subarray(r * cols, (r + 1) * cols);
        const amax = row.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        for (let c = 0; c < cols; c++) {
          const err = Math.abs(u.data[r * cols + c]! - row[c]!);
          const bound = relBound > 0 ? relBound * Math.abs(row[c]!) + 2 ** -24 : amax / 127;
          if (err > bound) assert.unreachable(`${label} ${name}[${r}, ${c}]: error ${err} > ${bound}`);
        }
      }
    }
  }
});

test('GGUF: qwen2 architecture keeps halves layout (no permutation) and reads QKV biases', async () => {
  const file = await readGguf(GGUF);
  const meta = metaOf(file).map(([k, t, v]): MetaEntry => [k.replace(/^llama\./, 'qwen2.'), t, k === 'general.architecture' ? 'qwen2' : v]);
  const rand = rng(3);
  const biases = [];
  for (let i = 0; i < 5; i++) {
    for (const [p, n] of [['q', 64], ['k', 32], ['v', 32]] as const) {
      biases.push({ name: `blk.${i}.attn_${p}.bias`, ne: [n], type: 0, data: new Uint8Array(Float32Array.from({ length: n }, () => rand() - 0.5).buffer) });
    }
  }
  const q = parseGguf(writeGguf(meta, [...tensorsOf(file), ...biases]), 'qwen2-synthetic.gguf');
  const w = ggufWeights(q);
  assert.is(w.config.architecture, 'qwen2');
  assert.is(w.config.qkvBias, true);
  assert.ok(bitEqual(w.tensors.get('layers.2.wq')!.data, ggufTensorData(file, 'blk.2.attn_q.weight')));
  assert.ok(bitEqual(w.tensors.get('layers.2.wk')!.data, ggufTensorData(file, 'blk.2.attn_k.weight')));
  assert.ok(bitEqual(w.tensors.get('layers.4.bk')!.data, ggufTensorData(q, 'blk.4.attn_k.bias')));
  assert.equal(w.tensors.get('layers.0.bq')!.shape, [64]);
});

// ---------------------------------------------------------------------------------------------
// Bad inputs: every one a ModelFormatError naming the file

test('bad llama2.c checkpoints', async () => {
  const bytes = await readFile(BIN);
  await expectFormatError('bin-truncated.bin', bytes.subarray(0, bytes.length - 100), loadLlama2c, /truncated: the header .* implies 1056540 bytes but the file has 1056440/);
  await expectFormatError('bin-header.bin', bytes.subarray(0, 20), loadLlama2c, /truncated: .*28-byte header/);
  await expectFormatError('bin-trailing.bin', Buffer.concat([bytes, Buffer.alloc(8)]), loadLlama2c, /unexpected trailing bytes/);
  const unshared = Buffer.from(bytes);
  unshared.writeInt32LE(-512, 20); // a separate classifier the file does not hold
  await expectFormatError('bin-unshared.bin', unshared, loadLlama2c, /truncated: .*vocab -512/);
  const heads = Buffer.from(bytes);
  heads.writeInt32LE(3, 16); // 8 query heads over 3 kv heads
  await expectFormatError('bin-heads.bin', heads, loadLlama2c, /bad header: config\.nKvHeads/);
  const zero = Buffer.from(bytes);
  zero.writeInt32LE(0, 12);
  await expectFormatError('bin-zero.bin', zero, loadLlama2c, /n_heads is 0/);
  const ak42 = Buffer.from(bytes);
  ak42.writeUInt32LE(0x616b3432, 0);
  await expectFormatError('bin-ak42.bin', ak42, loadLlama2c, /"ak42"/);
});

test('bad llama2.c tokenizers', async () => {
  const bytes = await readFile(TOK);
  const load = (p: string) => Llama2cTokenizer.load(p);
  await expectFormatError('tok-truncated.bin', bytes.subarray(0, bytes.length - 3), load, /truncated: token 511 needs/);
  await expectFormatError('tok-empty.bin', bytes.subarray(0, 2), load, /truncated/);
  await expectFormatError('tok-short.bin', bytes, (p) => Llama2cTokenizer.load(p, { vocabSize: 600 }), /truncated: token 512/);
  await expectFormatError('tok-few.bin', bytes, (p) => Llama2cTokenizer.load(p, { vocabSize: 500 }), /unexpected trailing bytes after 500 tokens/);
  const long = Buffer.from(bytes);
  long.writeInt32LE(1 << 30, 4 + 4); // token 0's byte length
  await expectFormatError('tok-long.bin', long, load, /token 0 has byte length 1073741824/);
});

test('bad GGUF files', async () => {
  const bytes = await readFile(GGUF);
  const file = parseGguf(bytes, GGUF);
  const magic = Buffer.from(bytes);
  magic.write('GGUG', 0, 'latin1');
  await expectFormatError('magic.gguf', magic, readGguf, /bad magic "GGUG"/);
  const version = Buffer.from(bytes);
  version.writeUInt32LE(4, 4);
  await expectFormatError('version.gguf', version, readGguf, /unsupported GGUF version 4/);
  version.writeUInt32LE(0x03000000, 4);
  await expectFormatError('version-be.gguf', version, readGguf, /big-endian/);
  await expectFormatError('cut-data.gguf', bytes.subarray(0, bytes.length - 1), readGguf, /truncated: tensor blk\.4\.ffn_norm\.weight/);
  await expectFormatError('cut-meta.gguf', bytes.subarray(0, 3000), readGguf, /truncated/);

  const meta = metaOf(file);
  const tensors = tensorsOf(file);
  const setType = (name: string, type: number) => tensors.map((t) => (t.name === name ? { ...t, type } : t));
  await expectFormatError('type99.gguf', writeGguf(meta, setType('blk.1.attn_v.weight', 99)), readGguf, /tensor blk\.1\.attn_v\.weight has unknown ggml type 99/);
  await expectFormatError('q4k.gguf', writeGguf(meta, setType('blk.1.attn_v.weight', 12)), loadGguf, /tensor blk\.1\.attn_v\.weight has type Q4_K \(12\), which kvlab does not read/);
  await expectFormatError('missing.gguf', writeGguf(meta, tensors.filter((t) => t.name !== 'blk.2.attn_k.weight')), loadGguf, /missing tensor layers\.2\.wk/);
  const reshaped = tensors.map((t) => (t.name === 'blk.0.ffn_up.weight' ? { ...t, ne: [64, 171], data: t.data.subarray(0, 64 * 171 * 4) } : t));
  await expectFormatError('shape.gguf', writeGguf(meta, reshaped), loadGguf, /tensor layers\.0\.w3 has shape \[171, 64\] but the config calls for \[172, 64\]/);
  const extra = [...tensors, { name: 'blk.0.attn_sinks.weight', ne: [8], type: 0, data: new Uint8Array(32) }];
  await expectFormatError('extra.gguf', writeGguf(meta, extra), loadGguf, /unexpected tensor blk\.0\.attn_sinks\.weight/);
  const arch = meta.map(([k, t, v]): MetaEntry => [k, t, k === 'general.architecture' ? 'gpt2' : v]);
  await expectFormatError('arch.gguf', writeGguf(arch, tensors), loadGguf, /unknown architecture "gpt2"/);
  const noHeads = meta.filter(([k]) => k !== 'llama.attention.head_count');
  await expectFormatError('noheads.gguf', writeGguf(noHeads, tensors), loadGguf, /missing metadata llama\.attention\.head_count/);
  const badAlign = [...meta, ['general.alignment', 'u32', 24] as MetaEntry];
  await expectFormatError('align.gguf', writeGguf(badAlign, tensors), readGguf, /general\.alignment must be a u32 power of two/);
  const hugeString = Buffer.from(bytes);
  hugeString.writeBigUInt64LE(1n << 40n, 24); // length of the first metadata key
  await expectFormatError('hugestring.gguf', hugeString, readGguf, /truncated: metadata key 0 needs 1099511627776 bytes/);
  const hugeCount = Buffer.from(bytes);
  hugeCount.writeBigUInt64LE(1n << 50n, 8); // tensor count
  await expectFormatError('hugecount.gguf', hugeCount, readGguf, /truncated: the tensor count is 1125899906842624/);
});

test('GGUF: every truncation and random corruption fails with ModelFormatError (never out of bounds)', async () => {
  const bytes = new Uint8Array(await readFile(GGUF));
  const file = parseGguf(bytes, GGUF);
  const cuts: number[] = [];
  for (let n = 0; n < file.dataOffset + 64; n += 7) cuts.push(n);
  for (let n = file.dataOffset; n < bytes.length; n += 4099) cuts.push(n);
  cuts.push(bytes.length - 1);
  for (const n of cuts) {
    try {
      parseGguf(bytes.slice(0, n), 'cut.gguf');
      assert.unreachable(`cut at ${n} parsed`);
    } catch (e) {
      if (!(e instanceof ModelFormatError)) throw new Error(`cut at ${n}: ${String(e)}`);
    }
  }
  const rand = rng(99);
  let failures = 0;
  for (let n = 0; n < 400; n++) {
    const copy = bytes.slice();
    const flips = 1 + Math.floor(rand() * 4);
    for (let k = 0; k < flips; k++) copy[Math.floor(rand() * file.dataOffset)] = Math.floor(rand() * 256);
    try {
      const f = parseGguf(copy, 'fuzz.gguf');
      ggufWeights(f);
      ggufTokenizer(f)?.encode('Once upon a time');
    } catch (e) {
      if (!(e instanceof ModelFormatError)) throw new Error(`corruption ${n}: ${(e as Error).stack ?? String(e)}`);
      failures++;
    }
  }
  assert.ok(failures > 0);
});

test.run();

// ---------------------------------------------------------------------------------------------
// Helpers (test-only)

async function expectFormatError(name: string, bytes: Uint8Array, load: (path: string) => Promise<unknown>, message: RegExp): Promise<void> {
  const path = join(tmp, name);
  await writeFile(path, bytes);
  try {
    await load(path);
  } catch (e) {
    if (!(e instanceof ModelFormatError)) throw new Error(`${name}: expected ModelFormatError, got ${(e as Error).stack ?? String(e)}`);
    assert.is(e.code, 'KVLAB_FORMAT');
    assert.is(e.path, path);
    assert.ok(e.message.startsWith(`${path}: `), e.message);
    assert.match(e.message, message);
    return;
  }
  assert.unreachable(`${name}: loaded without error`);
}

function bitEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let k = 0; k < ua.length; k++) if (ua[k] !== ub[k]) return false;
  return true;
}


function matVec(w: Float32Array, x: number[], cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < w.length / cols; r++) {
    let s = 0;
    for (let c = 0; c < cols; c++) s += w[r * cols + c]! * x[c]!;
    out.push(s);
  }
  return out;
}

function dot(a: number[], b: number[]): number {
  return a.reduce((s, v, k) => s + v * b[k]!, 0);
}

/** llama2.c / GGUF-llama RoPE: rotate (2i, 2i+1) by pos * theta^(-2i/d). */
function ropePairs(v: number[], pos: number, theta: number): number[] {
  const d = v.length;
  const out = v.slice();
  for (let i = 0; i < d / 2; i++) {
    const a = pos * theta ** (-2 * i / d);
    out[2 * i] = v[2 * i]! * Math.cos(a) - v[2 * i + 1]! * Math.sin(a);
    out[2 * i + 1] = v[2 * i]! * Math.sin(a) + v[2 * i + 1]! * Math.cos(a);
  }
  return out;
}

/** Hugging Face / kvlab RoPE: rotate (i, i + d/2) by pos * theta^(-2i/d). */
function ropeHalves(v: number[], pos: number, theta: number): number[] {
  const d = v.length;
  const h = d / 2;
  const out = v.slice();
  for (let i = 0; i < h; i++) {
    const a = pos * theta ** (-2 * i / d);
    out[i] = v[i]! * Math.cos(a) - v[i + h]! * Math.sin(a);
    out[i + h] = v[i]! * Math.sin(a) + v[i + h]! * Math.cos(a);
  }
  return out;
}

/** run.c's encode transliterated literally (O(n^2) merge loop), as an independent reference. */
function naiveRunCEncode(tok: Llama2cTokenizer, text: string, bos: boolean): number[] {
  const key = (b: Uint8Array) => Buffer.from(b).toString('latin1');
  const lookup = new Map<string, number>();
  tok.pieces.forEach((p, id) => {
    if (!lookup.has(key(p))) lookup.set(key(p), id);
  });
  const bytes = Buffer.from(text, 'utf8');
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  if (bytes.length > 0) tokens.push(lookup.get(' ')!);
  let buf: number[] = [];
  for (let i = 0; i < bytes.length; i++) {
    if ((bytes[i]! & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[i]!);
    if (i + 1 < bytes.length && (bytes[i + 1]! & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = lookup.get(Buffer.from(buf).toString('latin1'));
    if (id !== undefined) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = lookup.get(key(tok.pieces[tokens[i]!]!) + key(tok.pieces[tokens[i + 1]!]!));
      if (id !== undefined && tok.scores[id]! > bestScore) {
        bestScore = tok.scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

// A minimal GGUF writer, enough to rebuild stories260K with changes.

type MetaEntry = [string, GgufValueType, GgufValue];
interface TensorEntry { name: string; ne: number[]; type: number; data: Uint8Array }

function metaOf(file: GgufFile): MetaEntry[] {
  return [...file.metadata].map(([k, v]): MetaEntry => [k, file.metadataTypes.get(k)!, v]);
}

function tensorsOf(file: GgufFile): TensorEntry[] {
  return [...file.tensors.values()].map((t) => ({ name: t.name, ne: t.ne, type: t.type, data: file.data.read(t.offset, t.byteLength!) }));
}

function writeGguf(meta: MetaEntry[], tensors: TensorEntry[], alignment = 32): Uint8Array {
  const { header, dataStart, offsets, size } = ggufLayout(meta, tensors, alignment, 0);
  const out = Buffer.alloc(size);
  header.copy(out, 0);
  tensors.forEach((t, k) => out.set(t.data, dataStart + offsets[k]!));
  return out;
}

/** The same file written to `path` with a hole of `gap` bytes before the tensor data (sparse on disk). */
function writeGgufSparse(path: string, meta: MetaEntry[], tensors: TensorEntry[], gap: number): number {
  const { header, dataStart, offsets, size } = ggufLayout(meta, tensors, 32, gap);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header, 0, header.length, 0);
    tensors.forEach((t, k) => writeSync(fd, t.data, 0, t.data.length, dataStart + offsets[k]!));
  } finally {
    closeSync(fd);
  }
  return size;
}

function ggufLayout(meta: MetaEntry[], tensors: TensorEntry[], alignment: number, gap: number) {
  const chunks: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); chunks.push(b); };
  const u64 = (v: number | bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); chunks.push(b); };
  const str = (s: string) => { const b = Buffer.from(s, 'utf8'); u64(b.length); chunks.push(b); };
  const types: GgufValueType[] = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'];
  const scalar = (t: GgufValueType, v: GgufValue) => {
    const b = Buffer.alloc(8);
    const n = v as number;
    let size = 8;
    if (t === 'u8') (size = 1), b.writeUInt8(n);
    else if (t === 'i8') (size = 1), b.writeInt8(n);
    else if (t === 'bool') (size = 1), b.writeUInt8(v ? 1 : 0);
    else if (t === 'u16') (size = 2), b.writeUInt16LE(n);
    else if (t === 'i16') (size = 2), b.writeInt16LE(n);
    else if (t === 'u32') (size = 4), b.writeUInt32LE(n);
    else if (t === 'i32') (size = 4), b.writeInt32LE(n);
    else if (t === 'f32') (size = 4), b.writeFloatLE(n);
    else if (t === 'f64') b.writeDoubleLE(n);
    else if (t === 'u64') b.writeBigUInt64LE(BigInt(n));
    else if (t === 'i64') b.writeBigInt64LE(BigInt(n));
    chunks.push(b.subarray(0, size));
  };
  const value = (t: GgufValueType, v: GgufValue): void => {
    if (t === 'string') return str(v as string);
    if (t !== 'array') return scalar(t, v);
    const arr = v as ArrayLike<GgufValue>;
    const et: GgufValueType =
      v instanceof Float32Array ? 'f32' : v instanceof Int32Array ? 'i32' : v instanceof Uint32Array ? 'u32' : v instanceof Uint8Array ? 'u8'
        : typeof arr[0] === 'string' ? 'string' : typeof arr[0] === 'boolean' ? 'bool' : 'i64';
    u32(types.indexOf(et));
    u64(arr.length);
    for (let k = 0; k < arr.length; k++) value(et, arr[k]!);
  };
  u32(0x46554747); // "GGUF"
  u32(3);
  u64(tensors.length);
  u64(meta.length);
  for (const [k, t, v] of meta) {
    str(k);
    u32(types.indexOf(t));
    value(t, v);
  }
  let off = gap;
  const offsets: number[] = [];
  for (const t of tensors) {
    off = Math.ceil(off / alignment) * alignment;
    offsets.push(off);
    off += t.data.length;
    str(t.name);
    u32(t.ne.length);
    for (const n of t.ne) u64(n);
    u32(t.type);
    u64(offsets[offsets.length - 1]!);
  }
  const header = Buffer.concat(chunks);
  const dataStart = Math.ceil(header.length / alignment) * alignment;
  return { header, dataStart, offsets, size: dataStart + off };
}

function u16bytes(v: number[]): Uint8Array {
  return new Uint8Array(Uint16Array.from(v).buffer);
}

/** float32 -> f16 bits, round to nearest even (test-only reference encoder). */
function f32ToF16(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  const sign = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  const m = u & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m !== 0 ? 0x200 : 0);
  const exp = e - 127 + 15;
  if (exp >= 31) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const mm = m | 0x800000;
    const shift = 14 - exp;
    let h = mm >>> shift;
    const rem = mm & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (exp << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++;
  return sign | h;
}

/** float32 -> bf16 bits, round to nearest even. */
function f32ToBf16(x: number): number {
  const u = new Uint32Array(Float32Array.of(x).buffer)[0]!;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Q8_0: per block of 32, d = max|x| / 127 stored as f16, q = round(x / d). */
function quantizeQ80(x: Float32Array): Uint8Array {
  const out = new Uint8Array((x.length / 32) * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = amax / 127;
    const id = d > 0 ? 1 / d : 0;
    dv.setUint16(b * 34, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) dv.setInt8(b * 34 + 2 + j, Math.round(x[b * 32 + j]! * id));
  }
  return out;
}
