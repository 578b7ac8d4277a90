/**
 * Quality of a method's next-token logits against exact ones (DESIGN.md "Definitions"), from f32
 * logits [rows, vocab] where row i predicts the token after position i:
 *
 *   perplexity(logits, targets)  exp(mean over rows of -log softmax(row)[target])
 *   kl                           mean over rows of KL(P_exact || P_method), in nats
 *   pplDeltaPct                  (ppl_method / ppl_exact - 1) x 100
 *   top1                         share of rows whose argmax equals the exact argmax
 */
import { meanKL } from '../cacheblend/instrument.js';
import { ShapeError } from '../runtime/errors.js';

export { meanKL };

/** -log softmax(logits[row])[target], in nats. */
export function nll(logits: ArrayLike<number>, vocab: number, row: number, target: number): number {
  if (!(target >= 0 && target < vocab)) throw new ShapeError(`target ${target} is outside the vocabulary [0, ${vocab})`);
  const off = row * vocab;
  let mx = -Infinity;
  for (let j = 0; j < vocab; j++) mx = Math.max(mx, logits[off + j]!);
  let s = 0;
  for (let j = 0; j < vocab; j++) s += Math.exp(logits[off + j]! - mx);
  return Math.log(s) + mx - logits[off + target]!;
}

function rowsOf(logits: ArrayLike<number>, vocab: number, what: string): number {
  if (logits.length === 0 || logits.length % vocab !== 0) throw new ShapeError(`${what}: ${logits.length} logits are not [rows, ${vocab}]`);
  return logits.length / vocab;
}

/** Mean NLL of targets[i] under row i (rows = targets.length; extra rows are ignored). */
export function meanNll(logits: ArrayLike<number>, vocab: number, targets: ArrayLike<number>): number {
  const rows = rowsOf(logits, vocab, 'meanNll');
  if (targets.length === 0 || targets.length > rows) throw new ShapeError(`meanNll: ${targets.length} targets for ${rows} rows`);
  let s = 0;
  for (let i = 0; i < targets.length; i++) s += nll(logits, vocab, i, targets[i]!);
  return s / targets.length;
}

/** exp(mean NLL): the perplexity of `targets` under the rows of `logits`. */
export function perplexity(logits: ArrayLike<number>, vocab: number, targets: ArrayLike<number>): number {
  return Math.exp(meanNll(logits, vocab, targets));
}

export function argmaxRow(logits: ArrayLike<number>, vocab: number, row: number): number {
  let b = 0;
  const off = row * vocab;
  for (let j = 1; j < vocab; j++) if (logits[off + j]! > logits[off + b]!) b = j;
  return b;
}

/** Share of rows where both argmaxes agree. */
export function top1Agreement(exact: ArrayLike<number>, method: ArrayLike<number>, vocab: number): number {
  const rows = rowsOf(exact, vocab, 'top1Agreement');
  if (method.length !== exact.length) throw new ShapeError(`top1Agreement: ${exact.length} vs ${method.length} logits`);
  let agree = 0;
  for (let r = 0; r < rows; r++) if (argmaxRow(exact, vocab, r) === argmaxRow(method, vocab, r)) agree++;
  return agree / rows;
}

export interface ContinuationQuality {
  kl: number;
  pplExact: number;
  pplMethod: number;
  pplDeltaPct: number;
  top1: number;
  positions: number;
}

/**
 * Every quality number of one continuation: rows of both logits are aligned, row i predicting
 * targets[i] (pass targets.length = rows, or rows - 1 when the last row has no known next token;
 * KL and top-1 still use every row).
 */
export function continuationQuality(exact: ArrayLike<number>, method: ArrayLike<number>, vocab: number, targets: ArrayLike<number>): ContinuationQuality {
  const pplExact = perplexity(exact, vocab, targets), pplMethod = perplexity(method, vocab, targets);
  return {
    kl: meanKL(exact, method, vocab), pplExact, pplMethod, pplDeltaPct: (pplMethod / pplExact - 1) * 100,
    top1: top1Agreement(exact, method, vocab), positions: rowsOf(exact, vocab, 'continuationQuality'),
  };
}
