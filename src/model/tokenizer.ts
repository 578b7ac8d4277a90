/**
 * The tokenizer surface the engine uses, whatever file the tokenizer came from: llama2.c's
 * `tokenizer.bin` (`Llama2cTokenizer`) and Hugging Face's `tokenizer.json` (`HfTokenizer`) both
 * satisfy it.
 */

export interface Tokenizer {
  /**
   * Token ids of `text`. `bos` prepends `bosId` and `eos` appends `eosId`; when omitted each
   * follows the tokenizer's own convention (llama2.c: BOS yes, EOS no; Hugging Face: what the
   * tokenizer's config adds around a single sequence).
   */
  encode(text: string, options?: { bos?: boolean; eos?: boolean }): number[];
  /** Text of `ids`; BOS and EOS ids are dropped. Ids outside [0, vocabSize) throw RangeError. */
  decode(ids: readonly number[]): string;
  /** Number of token ids (highest id + 1). */
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
}
