/**
 * Rouge-L F-measure as the `rouge` package (pltrdy/rouge, which LongBench's rouge_score calls with
 * its defaults) computes it, summary-level with the union LCS:
 *
 *   sentences = text split on '.', empty pieces dropped, each piece's whitespace collapsed;
 *   words     = each sentence split on ' ' (a blank sentence contributes one empty word);
 *   m, n      = number of DISTINCT words in the reference, in the prediction;
 *   U         = the set of distinct words on the LCS of each (reference sentence, prediction
 *               sentence) pair, the LCS read back from the DP table preferring the reference side
 *               on ties; union over all pairs;
 *   R = |U| / m, P = |U| / n, F = 2 P R / (P + R + 1e-8).
 *
 * No lowercasing or punctuation removal besides the '.' split. Where the package raises (an empty
 * prediction or reference after the split), LongBench scores 0, and so does rougeL. One known
 * difference: the package reads the LCS back recursively and fails (LongBench then scores 0) on
 * sentence pairs of roughly 1000 words or more; rougeL computes those.
 */
import { pySplit } from './text.js';

export interface RougeLScores { f: number; p: number; r: number }

function sentences(text: string): string[] {
  return text.split('.').filter((s) => s.length > 0).map((s) => pySplit(s).join(' '));
}

function words(sents: readonly string[]): string[] {
  return sents.flatMap((s) => s.split(' '));
}

/** Words on the LCS of x (reference) and y (prediction), read back as the package does. */
function lcsWords(x: readonly string[], y: readonly string[]): string[] {
  const n = x.length, m = y.length, w = m + 1;
  const t = new Int32Array((n + 1) * w);
  for (let i = 1; i <= n; i++)
    for (let j = 1; j <= m; j++)
      t[i * w + j] = x[i - 1] === y[j - 1] ? t[(i - 1) * w + j - 1]! + 1 : Math.max(t[(i - 1) * w + j]!, t[i * w + j - 1]!);
  const out: string[] = [];
  let i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) { out.push(x[i - 1]!); i--; j--; }
    else if (t[(i - 1) * w + j]! > t[i * w + j - 1]!) i--;
    else j--;
  }
  return out;
}

/** Rouge-L precision, recall and F of a prediction against one reference, or null where the package raises. */
export function rougeLScores(prediction: string, reference: string): RougeLScores | null {
  const hyp = sentences(prediction), ref = sentences(reference);
  if (hyp.length === 0 || ref.length === 0) return null;
  const m = new Set(words(ref)).size, n = new Set(words(hyp)).size;
  const union = new Set<string>();
  const hypWords = hyp.map((s) => s.split(' '));
  for (const r of ref) {
    const rw = r.split(' ');
    for (const hw of hypWords) for (const word of lcsWords(rw, hw)) union.add(word);
  }
  const r = union.size / m, p = union.size / n;
  return { f: 2 * ((p * r) / (p + r + 1e-8)), p, r };
}

/** LongBench's rouge_score: the Rouge-L F-measure, 0 where the package raises. */
export function rougeL(prediction: string, reference: string): number {
  return rougeLScores(prediction, reference)?.f ?? 0;
}
