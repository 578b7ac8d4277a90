/**
 * The QA prompt format, shared by training (tools/train_qa.py reads the segment texts this file
 * produces, through datasets/multidoc-qa/make.ts) and kvlab's harness. Token sequence:
 *
 *   [BOS] enc(PREFIX)  enc(" " + chunk_1 + "\n") ... enc(" " + chunk_n + "\n")  enc(" Question: " + q + "\n Answer:")  enc(" " + answer) [EOS]
 *   '---- prefix ----' '------------------------ chunks ------------------------' '----------- query -----------'  '------ answer -------'
 *
 * Every segment is tokenized on its own (no special tokens added by the tokenizer), so a chunk has
 * the same tokens wherever it appears: CacheBlend precomputes each chunk's KV after the prefix
 * alone. Segments start with a space so a name is the same tokens in a chunk and in the question
 * (byte-level BPE joins the space to the word); the newline ending a chunk separates it from the
 * next. Training scores the answer tokens and EOS; the harness decodes greedily after the query
 * until EOS.
 */
import { ArgumentError, FormatError } from '../../runtime/errors.js';
import type { Tokenizer } from '../../model/tokenizer.js';

export const QA_PROMPT_VERSION = 1;
export const QA_PREFIX = 'Read the passages and answer the question.\n';
const QUESTION = ' Question: ';
const ANSWER = '\n Answer:';

export interface QaPromptText {
  prefix: string;
  chunks: string[];
  query: string;
  /** The reference answer segment (" " + answer), or '' when only prompting. */
  answer: string;
}

export interface QaPromptTokens {
  /** [BOS] + the prefix text's tokens. */
  prefix: number[];
  chunks: number[][];
  query: number[];
  /** The answer's tokens followed by EOS (empty answer: just EOS). */
  answer: number[];
}

/** The segment texts for passages + a question (+ the answer to train on). */
export function promptText(chunks: readonly string[], question: string, answer = ''): QaPromptText {
  if (chunks.length === 0) throw new ArgumentError('a QA prompt needs at least one passage');
  chunks.forEach((c, i) => {
    if (c.length === 0 || c.includes('\n')) throw new ArgumentError(`passage ${i} is empty or contains a newline (the chunk separator)`);
  });
  if (question.length === 0 || question.includes('\n')) throw new ArgumentError('the question is empty or contains a newline');
  return { prefix: QA_PREFIX, chunks: chunks.map((c) => ` ${c}\n`), query: `${QUESTION}${question}${ANSWER}`, answer: answer ? ` ${answer}` : '' };
}

/** The whole prompt as one string (prefix, chunks, query, answer). */
export function joinPrompt(p: QaPromptText): string {
  return p.prefix + p.chunks.join('') + p.query + p.answer;
}

/** Inverse of joinPrompt: passages, question and answer of a prompt string. */
export function splitPrompt(text: string): { chunks: string[]; question: string; answer: string } {
  if (!text.startsWith(QA_PREFIX)) throw new FormatError('a QA prompt must start with the fixed prefix');
  const body = text.slice(QA_PREFIX.length);
  const q = body.lastIndexOf(QUESTION);
  const a = body.lastIndexOf(ANSWER);
  if (q < 0 || a < q) throw new FormatError('a QA prompt needs " Question: ... \\n Answer:" after its passages');
  const chunks = body.slice(0, q).split('\n').slice(0, -1).map((c) => {
    if (!c.startsWith(' ')) throw new FormatError(`passage ${JSON.stringify(c.slice(0, 30))} does not start with a space`);
    return c.slice(1);
  });
  const rest = body.slice(a + ANSWER.length);
  return { chunks, question: body.slice(q + QUESTION.length, a), answer: rest.startsWith(' ') ? rest.slice(1) : rest };
}

/** Token ids of each segment (see the file comment). */
export function tokenizePrompt(tok: Tokenizer, p: QaPromptText): QaPromptTokens {
  const enc = (s: string) => tok.encode(s, { bos: false, eos: false });
  return {
    prefix: [tok.bosId, ...enc(p.prefix)],
    chunks: p.chunks.map(enc),
    query: enc(p.query),
    answer: [...(p.answer ? enc(p.answer) : []), tok.eosId],
  };
}

/** Total tokens of prefix + chunks + query (what must fit the context before the answer). */
export function promptLength(t: QaPromptTokens): number {
  return t.prefix.length + t.chunks.reduce((a, c) => a + c.length, 0) + t.query.length;
}
