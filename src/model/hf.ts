/**
 * Hugging Face model folders: `config.json`, the weights as `model.safetensors` or as shards
 * listed in `model.safetensors.index.json`, and optionally `tokenizer.json`
 * (+ `tokenizer_config.json`).
 *
 * Architectures: `llama` (LlamaForCausalLM), `mistral` (MistralForCausalLM) and `qwen2`
 * (Qwen2ForCausalLM). config.json fields map to `ModelConfig` as
 *
 *   hidden_size -> dim                      intermediate_size -> hiddenDim
 *   num_hidden_layers -> nLayers            num_attention_heads -> nHeads
 *   num_key_value_heads -> nKvHeads (default nHeads)
 *   head_dim -> headDim (default hidden_size / num_attention_heads)
 *   vocab_size -> vocabSize                 max_position_embeddings -> maxSeqLen
 *   rms_norm_eps -> normEps                 rope_theta -> ropeTheta (default 10000)
 *   rope_scaling -> ropeScaling ('linear' and 'llama3'; null, absent and 'default' mean none)
 *   tie_word_embeddings -> tiedEmbeddings (default false)
 *   attention_bias (llama, mistral) -> qkvBias; qwen2 always has Q/K/V biases
 *   bos_token_id, eos_token_id -> bosId, eosId (a list of EOS ids gives its first; absent ids
 *   are taken from the tokenizer)
 *
 * transformers 5's `rope_parameters` object (rope_type, rope_theta and the scaling fields) is read
 * in preference to `rope_theta` / `rope_scaling`. An active sliding window (Mistral's `sliding_window`, Qwen2's when `use_sliding_window`)
 * shorter than max_position_embeddings caps maxSeqLen at the window, where full attention and
 * sliding-window attention agree. Quantized checkpoints and activations other than SiLU are
 * rejected.
 *
 * Tensors map to kvlab's names (see weights.ts): model.embed_tokens.weight -> tok_embeddings;
 * model.layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k,v}_proj.bias,
 * post_attention_layernorm, mlp.{gate,up,down}_proj} -> layers.N.{attention_norm, wq/wk/wv/wo,
 * bq/bk/bv, ffn_norm, w1/w3/w2}; model.norm.weight -> norm; lm_head.weight -> output (not read
 * when the embeddings are tied, as transformers overwrites it with the embeddings). Rotary
 * `inv_freq` buffers are ignored; any other tensor is an error. Hugging Face checkpoints already
 * rotate halves, kvlab's RoPE convention, so no rows are permuted.
 *
 * Names and shapes are checked against the config from the headers, before any data is read.
 */

import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NotFoundError } from '../runtime/errors.js';
import { validateConfig, type Architecture, type ModelConfig, type RopeScaling } from './config.js';
import { ModelConfigError, ModelFormatError } from './errors.js';
import { HfTokenizer, TOKENIZER_JSON } from './hf-tokenizer.js';
import { openSafetensors, readSafetensorsTensors, type SafetensorsCheckpoint } from './safetensors.js';
import { checkWeights, expectedTensorShapes, type ModelWeights } from './weights.js';
import { statOrNull, isPlainObject, show } from './file-util.js';

export const HF_CONFIG_JSON = 'config.json';

/** model_type -> the architecture and the transformers class of its causal LM. */
const ARCHITECTURES: Record<string, { arch: Architecture; className: string; qkvBias: boolean | null }> = {
  llama: { arch: 'llama', className: 'LlamaForCausalLM', qkvBias: null },
  mistral: { arch: 'mistral', className: 'MistralForCausalLM', qkvBias: null },
  qwen2: { arch: 'qwen2', className: 'Qwen2ForCausalLM', qkvBias: true },
};

export interface HfModel {
  weights: ModelWeights;
  /** Null when the folder has no tokenizer.json. */
  tokenizer: HfTokenizer | null;
  /** The same object as `weights.config`. */
  config: ModelConfig;
}

/**
 * Load a Hugging Face model folder: config, float32 weights under kvlab's names, and the
 * tokenizer when the folder has one. Every problem is a `ModelFormatError` naming the file
 * (a folder that does not exist is a `NotFoundError`).
 */
export async function loadHfFolder(dir: string): Promise<HfModel> {
  const st = await statOrNull(dir);
  if (st === null) throw new NotFoundError(`${dir}: no such model folder`);
  if (!st.isDirectory()) throw new ModelFormatError(dir, 'not a folder (a Hugging Face model folder holds config.json and *.safetensors)');

  const configPath = join(dir, HF_CONFIG_JSON);
  if ((await statOrNull(configPath)) === null) {
    throw new ModelFormatError(configPath, 'not found: a Hugging Face model folder holds config.json beside its *.safetensors');
  }
  const raw = await readJsonObject(configPath);
  const partial = hfConfig(raw, configPath);

  const tokenizerPath = join(dir, TOKENIZER_JSON);
  let tokenizer: HfTokenizer | null = null;
  if ((await statOrNull(tokenizerPath)) !== null) {
    tokenizer = await HfTokenizer.load(tokenizerPath, {
      ...(partial.bosId !== undefined ? { fallbackBosId: partial.bosId } : {}),
      ...(partial.eosId !== undefined ? { fallbackEosId: partial.eosId } : {}),
    });
  }
  const eosId = partial.eosId ?? tokenizer?.eosId;
  if (eosId === undefined)
    throw new ModelFormatError(configPath, `missing eos_token_id, and the folder has no ${TOKENIZER_JSON} to take it from`);
  // Models trained without a BOS token (Qwen2 leaves bos_token_id unset) get the EOS id as their
  // document separator, which is what their tokenizers put between documents.
  const bosId = partial.bosId ?? tokenizer?.bosId ?? eosId;
  const config: ModelConfig = { ...partial.config, bosId, eosId };
  try {
    validateConfig(config);
  } catch (e) {
    if (e instanceof ModelConfigError) throw new ModelFormatError(configPath, `invalid config: ${e.message}`, { cause: e });
    throw e;
  }
  if (tokenizer !== null && tokenizer.vocabSize > config.vocabSize) {
    throw new ModelFormatError(tokenizerPath, `the tokenizer has ${tokenizer.vocabSize} tokens but config.json's vocab_size is ${config.vocabSize}`);
  }

  const checkpoint = await openSafetensors(dir);
  const names = mapTensorNames(checkpoint, config);
  const loaded = await readSafetensorsTensors(checkpoint, names.keys());
  const weights: ModelWeights = { config, tensors: new Map([...names].map(([hf, kv]) => [kv, loaded.get(hf)!])) };
  checkWeights(weights, checkpoint.source);
  return { weights, tokenizer, config };
}

/**
 * The `ModelConfig` fields of a parsed config.json, with BOS/EOS left out when the file does not
 * give them; `source` names the file in errors. Not yet validated (see `loadHfFolder`).
 */
export function hfConfig(raw: Record<string, unknown>, source: string): { config: Omit<ModelConfig, 'bosId' | 'eosId'>; bosId?: number; eosId?: number } {
  const modelType = raw.model_type;
  const classes = raw.architectures;
  if (classes !== undefined && (!Array.isArray(classes) || !classes.every((c) => typeof c === 'string'))) {
    throw new ModelFormatError(source, `architectures must be a list of class names but is ${show(classes)}`);
  }
  const className = (classes as string[] | undefined)?.[0];
  const byClass = Object.keys(ARCHITECTURES).find((k) => ARCHITECTURES[k]!.className === className);
  const key = typeof modelType === 'string' ? modelType : byClass;
  const spec = key === undefined ? undefined : ARCHITECTURES[key];
  const supported = Object.entries(ARCHITECTURES).map(([k, v]) => `${k} (${v.className})`).join(', ');
  if (spec === undefined) {
    const named = [modelType !== undefined ? `model_type ${show(modelType)}` : '', className !== undefined ? `architectures ${show(classes)}` : ''].filter((s) => s !== '').join(', ');
    throw new ModelFormatError(source, `unsupported architecture: ${named || 'no model_type or architectures given'} (supported: ${supported})`);
  }
  if (className !== undefined && className !== spec.className) {
    throw new ModelFormatError(source, `unsupported architecture ${className} for model_type ${show(key)}: kvlab runs ${spec.className} (supported: ${supported})`);
  }
  if (raw.quantization_config !== undefined && raw.quantization_config !== null) {
    const method = isPlainObject(raw.quantization_config) ? raw.quantization_config.quant_method : undefined;
    throw new ModelFormatError(source, `quantized checkpoints (quantization_config${method !== undefined ? ` ${show(method)}` : ''}) are not supported`);
  }
  const act = raw.hidden_act ?? 'silu';
  if (act !== 'silu') throw new ModelFormatError(source, `hidden_act ${show(act)} is not supported (Llama-family models use "silu")`);
  if (raw.mlp_bias === true) throw new ModelFormatError(source, 'mlp_bias true (biases on the MLP projections) is not supported');

  const int = (field: string, fallback?: number): number => {
    const v = raw[field];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (v === undefined) throw new ModelFormatError(source, `missing ${field}`);
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new ModelFormatError(source, `${field} must be an integer but is ${show(v)}`);
    return v;
  };
  const num = (obj: Record<string, unknown>, field: string, where: string, fallback?: number): number => {
    const v = obj[field];
    if ((v === undefined || v === null) && fallback !== undefined) return fallback;
    if (v === undefined) throw new ModelFormatError(source, `missing ${where}${field}`);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFormatError(source, `${where}${field} must be a number but is ${show(v)}`);
    return v;
  };

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  // transformers 5 keeps RoPE settings in rope_parameters; older files use rope_theta and
  // rope_scaling. rope_parameters wins where both are present.
  if (raw.rope_parameters !== undefined && raw.rope_parameters !== null && !isPlainObject(raw.rope_parameters)) {
    throw new ModelFormatError(source, `rope_parameters must be an object but is ${show(raw.rope_parameters)}`);
  }
  const ropeParameters = isPlainObject(raw.rope_parameters) ? raw.rope_parameters : null;
  const ropeTheta = ropeParameters !== null && ropeParameters.rope_theta !== undefined
    ? num(ropeParameters, 'rope_theta', 'rope_parameters.')
    : num(raw, 'rope_theta', '', 10000);
  const scalingRaw = ropeParameters ?? raw.rope_scaling;
  const scalingField = ropeParameters !== null ? 'rope_parameters' : 'rope_scaling';

  let maxSeqLen = int('max_position_embeddings');
  const window = raw.sliding_window;
  const windowActive = spec.arch === 'qwen2' ? raw.use_sliding_window === true : raw.use_sliding_window !== false;
  if (windowActive && window !== undefined && window !== null) {
    if (typeof window !== 'number' || !Number.isSafeInteger(window) || window <= 0) {
      throw new ModelFormatError(source, `sliding_window must be a positive integer or null but is ${show(window)}`);
    }
    maxSeqLen = Math.min(maxSeqLen, window);
  }

  let qkvBias = spec.qkvBias;
  if (qkvBias === null) {
    const b = raw.attention_bias ?? false;
    if (typeof b !== 'boolean') throw new ModelFormatError(source, `attention_bias must be a boolean but is ${show(b)}`);
    qkvBias = b;
  }
  const tied = raw.tie_word_embeddings ?? false;
  if (typeof tied !== 'boolean') throw new ModelFormatError(source, `tie_word_embeddings must be a boolean but is ${show(tied)}`);

  const config: Omit<ModelConfig, 'bosId' | 'eosId'> = {
    architecture: spec.arch,
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads: int('num_key_value_heads', nHeads),
    headDim: int('head_dim', Number.isInteger(dim / nHeads) ? dim / nHeads : undefined),
    vocabSize: int('vocab_size'),
    maxSeqLen,
    normEps: num(raw, 'rms_norm_eps', ''),
    ropeTheta,
    ropeScaling: ropeScaling(scalingRaw, scalingField, source),
    tiedEmbeddings: tied,
    qkvBias,
  };
  const out: { config: typeof config; bosId?: number; eosId?: number } = { config };
  const bos = tokenId(raw.bos_token_id, 'bos_token_id', source);
  const eos = tokenId(raw.eos_token_id, 'eos_token_id', source);
  if (bos !== undefined) out.bosId = bos;
  if (eos !== undefined) out.eosId = eos;
  return out;
}

function ropeScaling(s: unknown, field: string, source: string): RopeScaling {
  if (s === undefined || s === null) return null;
  if (!isPlainObject(s)) throw new ModelFormatError(source, `${field} must be an object or null but is ${show(s)}`);
  const type = s.rope_type ?? s.type;
  const num = (f: string): number => {
    const v = s[f];
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ModelFormatError(source, `${field}.${f} must be a number but is ${show(v)}`);
    return v;
  };
  if (type === 'default' || type === undefined) return null;
  if (type === 'linear') return { type: 'linear', factor: num('factor') };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
    };
  }
  throw new ModelFormatError(source, `${field} type ${show(type)} is not supported (supported: linear, llama3)`);
}

/** A token id field: an integer, a non-empty list of integers (the first is taken), or absent. */
function tokenId(v: unknown, field: string, source: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0) {
    throw new ModelFormatError(source, `${field} must be a token id or a non-empty list of them but is ${show(v)}`);
  }
  return first;
}

// ---------------------------------------------------------------------------------------------
// Tensor names

const LAYER_NAMES: Record<string, string> = {
  'input_layernorm.weight': 'attention_norm',
  'self_attn.q_proj.weight': 'wq',
  'self_attn.k_proj.weight': 'wk',
  'self_attn.v_proj.weight': 'wv',
  'self_attn.o_proj.weight': 'wo',
  'self_attn.q_proj.bias': 'bq',
  'self_attn.k_proj.bias': 'bk',
  'self_attn.v_proj.bias': 'bv',
  'post_attention_layernorm.weight': 'ffn_norm',
  'mlp.gate_proj.weight': 'w1',
  'mlp.up_proj.weight': 'w3',
  'mlp.down_proj.weight': 'w2',
};
const GLOBAL_NAMES: Record<string, string> = {
  'model.embed_tokens.weight': 'tok_embeddings',
  'model.norm.weight': 'norm',
  'lm_head.weight': 'output',
};
/** Buffers some exports save that hold nothing the weights do not (RoPE inverse frequencies,
 * recomputed from the config). */
const HARMLESS = /(^|\.)rotary_emb\.inv_freq$/;

/**
 * Hugging Face name -> kvlab name for every tensor to load, checked against `config` from the
 * headers alone: unknown or surplus tensors, missing tensors and wrong shapes are errors naming
 * the file.
 */
function mapTensorNames(checkpoint: SafetensorsCheckpoint, config: ModelConfig): Map<string, string> {
  const expected = expectedTensorShapes(config);
  const names = new Map<string, string>();
  const found = new Map<string, string>(); // kvlab name -> HF name
  for (const [name, header] of checkpoint.tensors) {
    if (HARMLESS.test(name)) continue;
    if (name === 'lm_head.weight' && config.tiedEmbeddings) continue;
    const kv = kvlabName(name);
    if (kv === null) {
      throw new ModelFormatError(header.path, `unexpected tensor ${name}: not part of a ${config.architecture} model as kvlab runs it`);
    }
    const shape = expected.get(kv);
    if (shape === undefined) {
      throw new ModelFormatError(header.path, `unexpected tensor ${name} for this config (${config.nLayers} layers, qkvBias ${config.qkvBias}, tied embeddings ${config.tiedEmbeddings})`);
    }
    const got = header.tensors.get(name)!.shape;
    if (got.length !== shape.length || got.some((d, k) => d !== shape[k])) {
      throw new ModelFormatError(header.path, `tensor ${name} has shape [${got.join(', ')}] but config.json calls for [${shape.join(', ')}]`);
    }
    names.set(name, kv);
    found.set(kv, name);
  }
  for (const [kv, shape] of expected) {
    if (!found.has(kv)) {
      throw new ModelFormatError(checkpoint.source, `missing tensor ${hfName(kv)} (expected shape [${shape.join(', ')}])`);
    }
  }
  return names;
}

function kvlabName(name: string): string | null {
  const g = GLOBAL_NAMES[name];
  if (g !== undefined) return g;
  const m = /^model\.layers\.(0|[1-9][0-9]*)\.(.+)$/.exec(name);
  if (m === null) return null;
  const l = LAYER_NAMES[m[2]!];
  return l === undefined ? null : `layers.${m[1]}.${l}`;
}

function hfName(kv: string): string {
  for (const [hf, k] of Object.entries(GLOBAL_NAMES)) if (k === kv) return hf;
  const m = /^layers\.([0-9]+)\.(.+)$/.exec(kv);
  if (m !== null) {
    for (const [hf, k] of Object.entries(LAYER_NAMES)) if (k === m[2]) return `model.layers.${m[1]}.${hf}`;
  }
  return kv;
}

// ---------------------------------------------------------------------------------------------
// Helpers

async function readJsonObject(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelFormatError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(path, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isPlainObject(v)) throw new ModelFormatError(path, 'expected a JSON object');
  return v;
}

