/**
 * LongBench JSONL (THUDM/LongBench's data files; one JSON object per line):
 *   {input: question, context: documents as one string, answers: string[], length: number,
 *    dataset: string, language: string, all_classes: string[] | null, _id: string}
 * Every line must hold all eight fields with those types; a malformed line is a LongBenchFormatError
 * naming the file and line, never skipped. Blank lines (a trailing newline) are allowed.
 *
 * For retrieval-style use, a context is split into passages (LongBench's "Passage N:" /
 * "Paragraph N:" markers where present, otherwise blank lines) or into fixed-size token chunks, and
 * the k passages most relevant to the question (BM25 over normalised words) are kept in their
 * original order.
 */
import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../model/tokenizer.js';
import { ArgumentError, FormatError } from '../runtime/errors.js';
import { normalizeAnswer } from './metrics.js';
import { pySplit } from './text.js';

export interface LongBenchRecord {
  id: string;
  input: string;
  context: string;
  answers: string[];
  length: number;
  dataset: string;
  language: string;
  allClasses: string[] | null;
  /** 1-based line of the record in its file. */
  line: number;
}

/** A malformed LongBench line: `file` and 1-based `line` say where. */
export class LongBenchFormatError extends FormatError {
  constructor(readonly file: string, readonly line: number, problem: string) {
    super(`${file}:${line}: ${problem}`);
  }
}

const isStrings = (a: unknown): a is string[] => Array.isArray(a) && a.every((x) => typeof x === 'string');

function record(o: unknown, file: string, line: number): LongBenchRecord {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw new LongBenchFormatError(file, line, 'expected a JSON object');
  const x = o as Record<string, unknown>;
  const need = (k: string, ok: (v: unknown) => boolean, what: string) => {
    if (!(k in x)) throw new LongBenchFormatError(file, line, `missing field '${k}'`);
    if (!ok(x[k])) throw new LongBenchFormatError(file, line, `field '${k}' must be ${what}, got ${JSON.stringify(x[k])?.slice(0, 60)}`);
  };
  need('input', (v) => typeof v === 'string', 'a string');
  need('context', (v) => typeof v === 'string', 'a string');
  need('answers', (v) => isStrings(v) && v.length > 0, 'a non-empty array of strings');
  need('length', (v) => typeof v === 'number' && Number.isInteger(v) && v >= 0, 'a non-negative integer');
  need('dataset', (v) => typeof v === 'string', 'a string');
  need('language', (v) => typeof v === 'string', 'a string');
  need('all_classes', (v) => v === null || isStrings(v), 'null or an array of strings');
  need('_id', (v) => typeof v === 'string' && v.length > 0, 'a non-empty string');
  return { id: x._id as string, input: x.input as string, context: x.context as string, answers: x.answers as string[],
    length: x.length as number, dataset: x.dataset as string, language: x.language as string,
    allClasses: x.all_classes as string[] | null, line };
}

/** Records of JSONL text; `file` names the source in errors. Duplicate _id values are an error too. */
export function parseLongBench(text: string, file = '<jsonl>'): LongBenchRecord[] {
  const out: LongBenchRecord[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    let o: unknown;
    try {
      o = JSON.parse(raw);
    } catch (e) {
      throw new LongBenchFormatError(file, line, `not valid JSON (${(e as Error).message})`);
    }
    const r = record(o, file, line);
    const prev = seen.get(r.id);
    if (prev !== undefined) throw new LongBenchFormatError(file, line, `_id '${r.id}' already used on line ${prev}`);
    seen.set(r.id, line);
    out.push(r);
  });
  if (out.length === 0) throw new FormatError(`${file}: no records`);
  return out;
}

/** Reads and validates a LongBench JSONL file. */
export function readLongBench(path: string): LongBenchRecord[] {
  return parseLongBench(readFileSync(path, 'utf8'), path);
}

const MARKER = /^(?:Passage|Paragraph) \d+:/m;

/** Passages of a context: LongBench's "Passage N:"/"Paragraph N:" sections, else blank-line paragraphs. */
export function splitPassages(context: string): string[] {
  if (MARKER.test(context)) {
    const starts: number[] = [];
    const re = new RegExp(MARKER.source, 'gm');
    for (let m = re.exec(context); m; m = re.exec(context)) starts.push(m.index);
    const parts = starts.map((s, i) => context.slice(s, starts[i + 1] ?? context.length).trim());
    const head = context.slice(0, starts[0]).trim();
    return (head ? [head, ...parts] : parts).filter((p) => p.length > 0);
  }
  return context.split(/\n[ \t]*\n/).map((p) => p.trim()).filter((p) => p.length > 0);
}

/** Fixed-size token chunks of a text (the last one may be shorter); no BOS. */
export function tokenChunks(text: string, tokenizer: Tokenizer, size: number): number[][] {
  if (!Number.isInteger(size) || size < 1) throw new ArgumentError(`chunk size must be a positive integer, got ${size}`);
  const ids = tokenizer.encode(text, { bos: false, eos: false });
  const out: number[][] = [];
  for (let i = 0; i < ids.length; i += size) out.push(ids.slice(i, i + size));
  return out;
}

/**
 * BM25 (k1 = 1.2, b = 0.75) of each passage for the question's words (normalizeAnswer words,
 * so articles and punctuation do not count), idf from these passages.
 */
export function bm25Scores(question: string, passages: readonly string[]): number[] {
  const docs = passages.map((p) => pySplit(normalizeAnswer(p)));
  const q = [...new Set(pySplit(normalizeAnswer(question)))];
  const avg = docs.reduce((a, d) => a + d.length, 0) / Math.max(docs.length, 1) || 1;
  const df = new Map<string, number>();
  for (const d of docs) for (const w of new Set(d)) df.set(w, (df.get(w) ?? 0) + 1);
  return docs.map((d) => {
    const tf = new Map<string, number>();
    for (const w of d) tf.set(w, (tf.get(w) ?? 0) + 1);
    let s = 0;
    for (const w of q) {
      const f = tf.get(w) ?? 0;
      if (f === 0) continue;
      const n = df.get(w)!;
      const idf = Math.log(1 + (docs.length - n + 0.5) / (n + 0.5));
      s += (idf * f * 2.2) / (f + 1.2 * (0.25 + (0.75 * d.length) / avg));
    }
    return s;
  });
}

/** Indices of the k best-scoring passages (ties to the earlier one), in their original order. */
export function topKPassages(question: string, passages: readonly string[], k: number): number[] {
  if (!Number.isInteger(k) || k < 1) throw new ArgumentError(`top-k must be a positive integer, got ${k}`);
  const s = bm25Scores(question, passages);
  return s.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, k).map((x) => x[1]).sort((a, b) => a - b);
}

export interface RetrievalOptions {
  tokenizer: Tokenizer;
  /** 'passages' (markers or blank lines, each passage one chunk) or 'tokens' (fixed-size chunks). */
  split?: 'passages' | 'tokens';
  /** Tokens per chunk: the size in 'tokens' mode, the cap per passage in 'passages' mode. */
  chunkTokens?: number;
  /** Keep the k most relevant chunks (default 4). */
  topK?: number;
  /** Cap on the context tokens in all; the last kept chunks are cut to fit. */
  maxContextTokens?: number;
}

export interface RetrievedContext {
  id: string;
  /** Token ids of each kept chunk (no BOS), in original order. */
  chunks: number[][];
  /** Which passages (or token chunks) were kept. */
  kept: number[];
  question: string;
  answers: string[];
}

/** A LongBench record as a RAG request: the top-k chunks of its context as token ids. */
export function retrieveContext(r: LongBenchRecord, o: RetrievalOptions): RetrievedContext {
  const size = o.chunkTokens ?? 64;
  const split = o.split ?? 'passages';
  let texts: string[];
  let chunks: number[][];
  if (split === 'tokens') {
    chunks = tokenChunks(r.context, o.tokenizer, size);
    texts = chunks.map((c) => o.tokenizer.decode(c));
  } else {
    texts = splitPassages(r.context);
    chunks = texts.map((t) => o.tokenizer.encode(t, { bos: false, eos: false }).slice(0, size));
  }
  const kept = topKPassages(r.input, texts, Math.min(o.topK ?? 4, texts.length)).filter((i) => chunks[i]!.length > 0);
  let budget = o.maxContextTokens ?? Infinity;
  const out: number[][] = [];
  const keptOut: number[] = [];
  for (const i of kept) {
    if (budget <= 0) break;
    const c = chunks[i]!.slice(0, budget);
    budget -= c.length;
    out.push(c);
    keptOut.push(i);
  }
  if (out.length === 0) throw new ArgumentError(`LongBench record ${r.id}: no context tokens were kept`);
  return { id: r.id, chunks: out, kept: keptOut, question: r.input, answers: r.answers };
}
