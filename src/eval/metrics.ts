/**
 * Answer-quality metrics with LongBench's definitions (THUDM/LongBench, LongBench/metrics.py and
 * eval.py), pinned to its reference on test/fixtures/longbench-metrics.json:
 *
 * - normalizeAnswer: lowercase -> drop ASCII punctuation -> replace the articles a/an/the (whole
 *   words, Unicode word boundaries as Python's `re` draws them) by a space -> collapse whitespace
 *   (Python's whitespace set, which is not JavaScript's `\s`).
 * - tokenF1 / qaF1 / exactMatch: token multiset F1 after normalisation, best over references.
 * - rougeL (rouge.ts), classificationScore, countScore, retrievalScore: LongBench's other English
 *   metrics; longbenchScore picks the one LongBench uses for a dataset, max over the answers.
 */
import { ArgumentError } from '../runtime/errors.js';
import { rougeL } from './rouge.js';
import { pySplit } from './text.js';

export { pySplit };

const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');
/** Python re's \b(a|an|the)\b on str: word characters are Unicode letters, numbers and '_'. */
const ARTICLES = /(?<![\p{L}\p{N}_])(?:a|an|the)(?![\p{L}\p{N}_])/gu;

/** LongBench's normalize_answer: lower -> remove punctuation -> remove articles -> collapse spaces. */
export function normalizeAnswer(s: string): string {
  const lowered = s.toLowerCase();
  let noPunct = '';
  for (const ch of lowered) if (!PUNCTUATION.has(ch)) noPunct += ch;
  return pySplit(noPunct.replace(ARTICLES, ' ')).join(' ');
}

function tokens(s: string): string[] {
  return pySplit(normalizeAnswer(s));
}

/** Token-level F1 of one prediction against one reference, after normalisation. */
export function tokenF1(prediction: string, reference: string): number {
  const p = tokens(prediction);
  const r = tokens(reference);
  const counts = new Map<string, number>();
  for (const t of r) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / r.length;
  return (2 * precision * recall) / (precision + recall);
}

/** QA F1: the best token F1 over the references (LongBench scores a prediction this way). */
export function qaF1(prediction: string, references: readonly string[]): number {
  let best = 0;
  for (const r of references) best = Math.max(best, tokenF1(prediction, r));
  return best;
}

/** Exact match (0 or 1): the normalised prediction equals some normalised reference. */
export function exactMatch(prediction: string, references: readonly string[]): number {
  const p = normalizeAnswer(prediction);
  return references.some((r) => normalizeAnswer(r) === p) ? 1 : 0;
}

/**
 * LongBench's classification_score (trec, lsht): the classes named in the prediction, minus those
 * that are substrings of a longer reference; 1/|matches| when the reference is among them. Python's
 * list.remove during iteration skips the element after each removal; that is kept, since it is the
 * reference's behaviour.
 */
export function classificationScore(prediction: string, reference: string, allClasses: readonly string[]): number {
  const matches = allClasses.filter((c) => prediction.includes(c));
  for (let i = 0; i < matches.length; i++) {
    const t = matches[i]!;
    if (reference.includes(t) && t !== reference) matches.splice(matches.indexOf(t), 1);
  }
  return matches.includes(reference) ? 1 / matches.length : 0;
}

const DIGITS = /\p{Nd}+/gu;

/** LongBench's count_score (passage_count): share of the numbers in the prediction equal to the reference. */
export function countScore(prediction: string, reference: string): number {
  const numbers = prediction.match(DIGITS) ?? [];
  if (numbers.length === 0) return 0;
  return numbers.filter((n) => n === reference).length / numbers.length;
}

/** LongBench's retrieval_score (passage_retrieval_en): the reference names 'Paragraph N'. */
export function retrievalScore(prediction: string, reference: string): number {
  const m = /Paragraph (\p{Nd}+)/u.exec(reference);
  if (!m) throw new ArgumentError(`retrievalScore: reference ${JSON.stringify(reference.slice(0, 40))} names no 'Paragraph N'`);
  const numbers = prediction.match(DIGITS) ?? [];
  if (numbers.length === 0) return 0;
  return numbers.filter((n) => n === m[1]).length / numbers.length;
}

export type LongBenchMetric = 'qa_f1' | 'rouge_l' | 'classification' | 'count' | 'retrieval';

/** The metric LongBench's eval.py applies to each English dataset (Chinese and code ones are not ported). */
export const LONGBENCH_METRIC: Readonly<Record<string, LongBenchMetric>> = {
  narrativeqa: 'qa_f1', qasper: 'qa_f1', multifieldqa_en: 'qa_f1', hotpotqa: 'qa_f1', '2wikimqa': 'qa_f1',
  musique: 'qa_f1', triviaqa: 'qa_f1', gov_report: 'rouge_l', qmsum: 'rouge_l', multi_news: 'rouge_l',
  samsum: 'rouge_l', trec: 'classification', passage_retrieval_en: 'retrieval', passage_count: 'count',
};

/** Datasets whose prediction LongBench cuts to its first line before scoring. */
const FIRST_LINE = new Set(['trec', 'triviaqa', 'samsum', 'lsht']);

/** Score in [0, 1] of one prediction as LongBench's scorer does: its dataset's metric, max over answers. */
export function longbenchScore(dataset: string, prediction: string, answers: readonly string[], allClasses: readonly string[] = []): number {
  const metric = LONGBENCH_METRIC[dataset];
  if (!metric) throw new ArgumentError(`longbenchScore: no ported metric for dataset '${dataset}' (known: ${Object.keys(LONGBENCH_METRIC).join(', ')})`);
  const pred = FIRST_LINE.has(dataset) ? prediction.replace(/^\n+/, '').split('\n')[0]! : prediction;
  let best = 0;
  for (const a of answers) {
    const s = metric === 'qa_f1' ? tokenF1(pred, a) : metric === 'rouge_l' ? rougeL(pred, a)
      : metric === 'classification' ? classificationScore(pred, a, allClasses)
      : metric === 'count' ? countScore(pred, a) : retrievalScore(pred, a);
    best = Math.max(best, s);
  }
  return best;
}
