/**
 * Hugging Face tokenizers (`tokenizer.json`, plus `tokenizer_config.json` when present), run by
 * @huggingface/tokenizers, behind kvlab's `Tokenizer` interface (the same encode/decode surface
 * as `Llama2cTokenizer`).
 *
 * encode: the text is tokenized without special tokens (added tokens written in the text, such as
 * "<|im_start|>", are still matched, as Hugging Face does by default); then BOS and EOS are added
 * as asked. When not asked, each follows the tokenizer's convention: `add_bos_token` /
 * `add_eos_token` of tokenizer_config.json when given, else whether the post-processor's template
 * for a single sequence puts that token before / after it. Other template tokens are not added.
 *
 * decode: BOS and EOS ids are dropped (as in `Llama2cTokenizer`), other special tokens are kept,
 * and the rest goes through the tokenizer's decoder. Spaces are cleaned up ("a ." -> "a.") only
 * when tokenizer_config.json sets `clean_up_tokenization_spaces`, so decode(encode(text)) is the
 * text again for lossless tokenizers.
 *
 * BOS / EOS ids: tokenizer_config.json's `bos_token` / `eos_token`, else the special tokens the
 * template puts before / after the sequence, else `options.fallbackBosId` / `fallbackEosId`
 * (the model's config.json ids, which `loadHfFolder` passes). A tokenizer with none of these is
 * an error.
 *
 * @example
 *   const tok = await HfTokenizer.load('models/qwen2-0.5b');
 *   tok.decode(tok.encode('Hello world')) === 'Hello world';
 */

import { Tokenizer as HfTokenizerImpl } from '@huggingface/tokenizers';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ModelFormatError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';
import { statOrNull, isPlainObject } from './file-util.js';

export interface HfTokenizerOptions {
  /** BOS id to use when the tokenizer files name no BOS token (e.g. config.json's bos_token_id). */
  fallbackBosId?: number;
  /** EOS id to use when the tokenizer files name no EOS token (e.g. config.json's eos_token_id). */
  fallbackEosId?: number;
}

export const TOKENIZER_JSON = 'tokenizer.json';
export const TOKENIZER_CONFIG_JSON = 'tokenizer_config.json';
/** tokenizer.json model types @huggingface/tokenizers runs (WordLevel through its legacy path). */
const MODEL_TYPES = ['BPE', 'WordPiece', 'Unigram', 'WordLevel'];

export class HfTokenizer implements Tokenizer {
  readonly bosId: number;
  readonly eosId: number;
  /** Highest token id + 1 (model vocabulary and added tokens). */
  readonly vocabSize: number;
  /** Whether `encode` adds BOS / EOS when not told. */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** The tokenizer.json path (or label) named in errors. */
  readonly source: string;
  readonly #tok: HfTokenizerImpl;
  readonly #cleanUpSpaces: boolean;

  private constructor(tok: HfTokenizerImpl, init: { bosId: number; eosId: number; vocabSize: number; addBos: boolean; addEos: boolean; cleanUpSpaces: boolean; source: string }) {
    this.#tok = tok;
    this.bosId = init.bosId;
    this.eosId = init.eosId;
    this.vocabSize = init.vocabSize;
    this.addBos = init.addBos;
    this.addEos = init.addEos;
    this.#cleanUpSpaces = init.cleanUpSpaces;
    this.source = init.source;
  }

  /**
   * Read a tokenizer from `path`: a `tokenizer.json` file or the folder holding it. A
   * `tokenizer_config.json` beside it is read too when present.
   */
  static async load(path: string, options: HfTokenizerOptions = {}): Promise<HfTokenizer> {
    const jsonPath = (await statOrNull(path))?.isDirectory() ? join(path, TOKENIZER_JSON) : path;
    const configPath = join(dirname(jsonPath), TOKENIZER_CONFIG_JSON);
    const json = await readJson(jsonPath);
    const config = (await statOrNull(configPath)) === null ? null : await readJson(configPath);
    if (config !== null && !isPlainObject(config)) throw new ModelFormatError(configPath, 'expected a JSON object');
    return HfTokenizer.fromJson(json, config, { ...options, source: jsonPath });
  }

  /** Build from the parsed contents of tokenizer.json and tokenizer_config.json (or null). */
  static fromJson(tokenizerJson: unknown, tokenizerConfig: Record<string, unknown> | null, options: HfTokenizerOptions & { source?: string } = {}): HfTokenizer {
    const source = options.source ?? '(tokenizer.json)';
    if (!isPlainObject(tokenizerJson) || !isPlainObject(tokenizerJson.model)) {
      throw new ModelFormatError(source, 'expected a JSON object with a "model" object (a Hugging Face tokenizer.json)');
    }
    const modelType = tokenizerJson.model.type;
    if (modelType !== undefined && !(typeof modelType === 'string' && MODEL_TYPES.includes(modelType))) {
      throw new ModelFormatError(source, `tokenizer model type ${JSON.stringify(modelType)} is not supported (supported: ${MODEL_TYPES.join(', ')})`);
    }
    if (tokenizerJson.added_tokens !== undefined && !Array.isArray(tokenizerJson.added_tokens)) {
      throw new ModelFormatError(source, '"added_tokens" must be an array');
    }
    const json = {
      normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, added_tokens: [],
      ...tokenizerJson,
    };
    const config = tokenizerConfig ?? {};
    let tok: HfTokenizerImpl;
    try {
      tok = new HfTokenizerImpl(json, config);
    } catch (e) {
      throw new ModelFormatError(source, `@huggingface/tokenizers rejected it: ${(e as Error).message}`, { cause: e });
    }

    let vocabSize = 0;
    for (const id of tok.get_vocab(true).values()) vocabSize = Math.max(vocabSize, id + 1);
    for (const id of tok.get_added_tokens_decoder().keys()) vocabSize = Math.max(vocabSize, id + 1);
    if (vocabSize === 0) throw new ModelFormatError(source, 'the vocabulary is empty');

    const template = singleTemplate(json.post_processor);
    const idOf = (token: string, field: string): number => {
      const id = tok.token_to_id(token);
      if (id === undefined) throw new ModelFormatError(source, `${TOKENIZER_CONFIG_JSON} ${field} ${JSON.stringify(token)} is not in the vocabulary`);
      return id;
    };
    const resolve = (field: 'bos_token' | 'eos_token', fromTemplate: number | undefined, fallback: number | undefined): number => {
      const named = tokenContent(config[field]);
      const id = named !== null ? idOf(named, field) : fromTemplate ?? fallback;
      if (id === undefined) {
        throw new ModelFormatError(source, `names no ${field === 'bos_token' ? 'BOS' : 'EOS'} token (no ${field} in ${TOKENIZER_CONFIG_JSON}, none in the post-processor template) and no fallback id was given`);
      }
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
        throw new ModelFormatError(source, `${field} id ${id} is outside the vocabulary [0, ${vocabSize})`);
      }
      return id;
    };
    const tokenId = (t: string | undefined): number | undefined => (t === undefined ? undefined : tok.token_to_id(t));
    const bosId = resolve('bos_token', tokenId(template.before[0]), options.fallbackBosId);
    const eosId = resolve('eos_token', tokenId(template.after.at(-1)), options.fallbackEosId);
    const flag = (field: string, fromTemplate: boolean): boolean => {
      const v = config[field];
      if (v === undefined || v === null) return fromTemplate;
      if (typeof v !== 'boolean') throw new ModelFormatError(source, `${TOKENIZER_CONFIG_JSON} ${field} must be a boolean but is ${JSON.stringify(v)}`);
      return v;
    };
    const addBos = flag('add_bos_token', template.before.some((t) => tokenId(t) === bosId));
    const addEos = flag('add_eos_token', template.after.some((t) => tokenId(t) === eosId));
    const cleanUpSpaces = flag('clean_up_tokenization_spaces', false);
    return new HfTokenizer(tok, { bosId, eosId, vocabSize, addBos, addEos, cleanUpSpaces, source });
  }

  /** Token ids of `text` (see the file comment for BOS/EOS defaults). */
  encode(text: string, options: { bos?: boolean; eos?: boolean } = {}): number[] {
    const enc = this.#tok.encode(text, { add_special_tokens: false });
    const ids: number[] = [];
    if (options.bos ?? this.addBos) ids.push(this.bosId);
    for (let k = 0; k < enc.ids.length; k++) {
      const id = enc.ids[k];
      if (typeof id !== 'number' || !Number.isInteger(id)) {
        throw new ModelFormatError(this.source, `cannot encode the piece ${JSON.stringify(enc.tokens[k])}: not in the vocabulary and the tokenizer has no unknown token`);
      }
      ids.push(id);
    }
    if (options.eos ?? this.addEos) ids.push(this.eosId);
    return ids;
  }

  /** Text of `ids`; BOS and EOS ids are dropped. */
  decode(ids: readonly number[]): string {
    const kept: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.#tok.id_to_token(id) === undefined) {
        throw new RangeError(`${this.source}: token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
      if (id !== this.bosId && id !== this.eosId) kept.push(id);
    }
    if (kept.length === 0) return '';
    return this.#tok.decode(kept, { skip_special_tokens: false, clean_up_tokenization_spaces: this.#cleanUpSpaces });
  }

  /** The id of the token string `token` (vocabulary or added token), or undefined. */
  tokenToId(token: string): number | undefined {
    return this.#tok.token_to_id(token);
  }

  /** The token string of `id`, or undefined. */
  idToToken(id: number): string | undefined {
    return this.#tok.id_to_token(id);
  }
}

/** The special tokens a TemplateProcessing post-processor (possibly inside a Sequence) puts
 * before and after sequence A of a single input; empty when there is none. */
function singleTemplate(post: unknown): { before: string[]; after: string[] } {
  const none = { before: [], after: [] };
  if (!isPlainObject(post)) return none;
  if (post.type === 'Sequence' && Array.isArray(post.processors)) {
    for (const p of post.processors) {
      const t = singleTemplate(p);
      if (t.before.length > 0 || t.after.length > 0) return t;
    }
    return none;
  }
  if (post.type !== 'TemplateProcessing' || !Array.isArray(post.single)) return none;
  const before: string[] = [];
  const after: string[] = [];
  let seen = false;
  for (const item of post.single) {
    if (!isPlainObject(item)) continue;
    if (isPlainObject(item.Sequence)) seen = true;
    else if (isPlainObject(item.SpecialToken) && typeof item.SpecialToken.id === 'string') (seen ? after : before).push(item.SpecialToken.id);
  }
  return { before, after };
}

/** A token named in tokenizer_config.json: a string or an AddedToken object `{content}`. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (isPlainObject(v) && typeof v.content === 'string') return v.content;
  return null;
}

async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelFormatError(path, `cannot read: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ModelFormatError(path, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

