/**
 * Dataset kinds of the experiment grid, pluggable: a kind turns a dataset entry of the spec into
 * items (a RAG request each: prefix, chunks, query as token ids) and says how they are scored.
 *
 *   mode 'logits'    the query is a known continuation; a method's query logits are compared with
 *                    full prefill's (KL, perplexity change, top-1).
 *   mode 'generate'  greedy answer after the query (up to maxNewTokens); `score(answer)` gives the
 *                    item's answer metrics (e.g. {f1, em}), and the answer is also compared with
 *                    full prefill's answer (agreementF1) and first-token logits (firstTokenKL, top1).
 *
 * Built in: 'stories260k-blend' (datasets/stories260k-blend, logits), 'longbench' (LongBench JSONL,
 * generate, scored with LongBench's metric for the record's dataset) and 'multidoc-qa' (kvlab's QA
 * sets, datasets/multidoc-qa, in src/eval/qa's prompt format; F1/EM). Another module adds a kind
 * with one call: `registerDatasetKind({kind: 'my-set', load(spec, ctx) {...}})`.
 */
import { readFileSync } from 'node:fs';
import type { Model } from '../../model/model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { ArgumentError, FormatError, NotFoundError } from '../../runtime/errors.js';
import { readLongBench, retrieveContext } from '../longbench.js';
import { exactMatch, LONGBENCH_METRIC, longbenchScore, qaF1 } from '../metrics.js';
import { readQaSet } from '../qa/dataset.js';
import { MAX_ANSWER_TOKENS } from '../qa/answer.js';
import { promptLength, promptText, tokenizePrompt } from '../qa/prompt.js';
import type { GridDatasetSpec } from './spec.js';

export interface GridItem {
  id: string;
  prefix: number[];
  chunks: number[][];
  query: number[];
  mode: 'logits' | 'generate';
  /** generate: answer tokens at most (default 16). */
  maxNewTokens?: number;
  /** generate: tokens that end the answer (default EOS and BOS). */
  stopTokens?: number[];
  /** generate: the answer's metrics, each a number in [0, 1] (e.g. {f1, em}). */
  score?: (answer: string) => Record<string, number>;
}

export interface LoadedDataset { name: string; version: string; items: GridItem[] }
export interface DatasetLoadContext { model: Model; tokenizer: Tokenizer | null }
export interface DatasetKind {
  kind: string;
  load(spec: GridDatasetSpec, ctx: DatasetLoadContext): LoadedDataset;
}

const KINDS = new Map<string, DatasetKind>();

export function registerDatasetKind(k: DatasetKind): void {
  if (!/^[a-z0-9][a-z0-9-]*$/.test(k.kind)) throw new ArgumentError(`dataset kind name '${k.kind}' must be lowercase letters, digits and '-'`);
  KINDS.set(k.kind, k);
}

export function datasetKind(kind: string): DatasetKind {
  const k = KINDS.get(kind);
  if (!k) throw new NotFoundError(`no dataset kind '${kind}' (registered: ${[...KINDS.keys()].join(', ')})`);
  return k;
}

export function datasetKinds(): string[] {
  return [...KINDS.keys()];
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
}

const ids = (a: unknown): a is number[] => Array.isArray(a) && a.every((t) => Number.isInteger(t) && t >= 0);

registerDatasetKind({
  kind: 'stories260k-blend',
  load(spec) {
    const d = readJson(spec.path) as { name?: unknown; version?: unknown; prefix?: unknown; contexts?: unknown };
    if (typeof d?.name !== 'string' || !ids(d.prefix) || !Array.isArray(d.contexts) || d.contexts.length === 0)
      throw new FormatError(`${spec.path}: expected {name, version, prefix: number[], contexts: [...]}`);
    const items = (d.contexts as unknown[]).slice(0, spec.limit).map((c, i): GridItem => {
      const x = c as { id?: unknown; chunks?: unknown; continuation?: unknown };
      if (!Array.isArray(x?.chunks) || x.chunks.length === 0 || !x.chunks.every(ids) || !ids(x.continuation) || x.continuation.length < 2)
        throw new FormatError(`${spec.path}: context ${i} needs chunks: number[][] and a continuation of >= 2 tokens`);
      return { id: typeof x.id === 'string' ? x.id : String(i), prefix: d.prefix as number[], chunks: x.chunks as number[][],
        query: x.continuation, mode: 'logits' };
    });
    return { name: d.name, version: String(d.version), items };
  },
});

/**
 * LongBench options: topK (4), chunkTokens (64), split ('passages' | 'tokens'), maxNewTokens (16).
 * Prompt: [BOS], the kept chunks, then " Question: <input>\n Answer:"; the context is cut so BOS +
 * chunks + query + answer fit the model's context.
 */
registerDatasetKind({
  kind: 'longbench',
  load(spec, { model, tokenizer }) {
    if (!tokenizer) throw new ArgumentError(`dataset ${spec.path}: LongBench needs the model's tokenizer`);
    const o = spec.options ?? {};
    const num = (k: string, def: number) => {
      const v = o[k] ?? def;
      if (!(typeof v === 'number' && Number.isInteger(v) && v > 0)) throw new ArgumentError(`LongBench option ${k} must be a positive integer, got ${JSON.stringify(v)}`);
      return v;
    };
    const split = o.split ?? 'passages';
    if (split !== 'passages' && split !== 'tokens') throw new ArgumentError(`LongBench option split must be 'passages' or 'tokens', got ${JSON.stringify(split)}`);
    const maxNew = num('maxNewTokens', 16);
    const records = readLongBench(spec.path).slice(0, spec.limit);
    const items = records.map((r): GridItem => {
      const query = tokenizer.encode(` Question: ${r.input.replace(/\s+/g, ' ')}\n Answer:`, { bos: false, eos: false });
      const prefix = [model.config.bosId];
      const budget = model.config.maxSeqLen - prefix.length - query.length - maxNew;
      if (budget < 1) throw new ArgumentError(`LongBench record ${r.id}: the question alone fills the model's ${model.config.maxSeqLen} positions`);
      const ctx = retrieveContext(r, { tokenizer, split, topK: num('topK', 4), chunkTokens: num('chunkTokens', 64), maxContextTokens: budget });
      const ported = LONGBENCH_METRIC[r.dataset] !== undefined;
      return {
        id: r.id, prefix, chunks: ctx.chunks, query, mode: 'generate', maxNewTokens: maxNew,
        stopTokens: [model.config.eosId, model.config.bosId, ...tokenizer.encode('\n', { bos: false, eos: false }).slice(-1)],
        score: (answer) => ({
          score: ported ? longbenchScore(r.dataset, answer, r.answers, r.allClasses ?? []) : qaF1(answer, r.answers),
          f1: qaF1(answer, r.answers), em: exactMatch(answer, r.answers),
        }),
      };
    });
    return { name: spec.path.split('/').slice(-2).join('/'), version: 'jsonl', items };
  },
});

/**
 * kvlab's multi-document QA sets (src/eval/qa, datasets/multidoc-qa/v1): `path` is one JSONL file of
 * a set (e.g. v1/two-hop.jsonl). Items in src/eval/qa's prompt format (prefix, one chunk per
 * passage, " Question: ...\n Answer:"), answers decoded greedily until EOS (maxNewTokens option,
 * default src/eval/qa's MAX_ANSWER_TOKENS), scored by F1 and EM over the record's answers.
 */
registerDatasetKind({
  kind: 'multidoc-qa',
  load(spec, { model, tokenizer }) {
    if (!tokenizer) throw new ArgumentError(`dataset ${spec.path}: multidoc-qa needs the model's tokenizer`);
    const maxNew = spec.options?.maxNewTokens ?? MAX_ANSWER_TOKENS;
    if (!(typeof maxNew === 'number' && Number.isInteger(maxNew) && maxNew > 0)) throw new ArgumentError(`multidoc-qa option maxNewTokens must be a positive integer`);
    const items = readQaSet(spec.path).slice(0, spec.limit).map((r): GridItem => {
      const t = tokenizePrompt(tokenizer, promptText(r.chunks, r.input));
      if (promptLength(t) + maxNew > model.config.maxSeqLen)
        throw new ArgumentError(`multidoc-qa record ${r._id}: ${promptLength(t)} prompt tokens + ${maxNew} answer tokens exceed the model's ${model.config.maxSeqLen}`);
      return { id: r._id, prefix: t.prefix, chunks: t.chunks, query: t.query, mode: 'generate', maxNewTokens: maxNew, stopTokens: [model.config.eosId],
        score: (answer) => ({ f1: qaF1(answer, r.answers), em: exactMatch(answer, r.answers) }) };
    });
    return { name: spec.path.split('/').slice(-3).join('/'), version: 'jsonl', items };
  },
});
