/**
 * Answer-quality metrics for QA with LongBench's normalisation (lowercase, drop ASCII punctuation,
 * drop the articles a/an/the, collapse whitespace), scored against the best of several references.
 */

const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** LongBench's normalize_answer: lower -> remove punctuation -> remove articles -> collapse spaces. */
export function normalizeAnswer(s: string): string {
  const lowered = s.toLowerCase();
  let noPunct = '';
  for (const ch of lowered) if (!PUNCTUATION.has(ch)) noPunct += ch;
  const noArticles = noPunct.replace(/\b(a|an|the)\b/g, ' ');
  return noArticles.split(/\s+/).filter((w) => w.length > 0).join(' ');
}

function tokens(s: string): string[] {
  const n = normalizeAnswer(s);
  return n.length === 0 ? [] : n.split(' ');
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
