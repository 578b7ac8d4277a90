// Evaluation metrics (src/eval): LongBench's F1 / normalisation / Rouge-L / classification / count /
// retrieval scores against values recorded from LongBench's own metrics.py and the `rouge` package
// (test/fixtures/longbench-metrics.json, command in test/fixtures/README.md); logit quality
// (perplexity, KL, top-1) and the TTFT / size summaries on hand-worked numbers.
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { sizeSummary, summarize, ttftSummary } from '../src/eval/aggregate.js';
import { classificationScore, countScore, exactMatch, longbenchScore, normalizeAnswer, qaF1, retrievalScore } from '../src/eval/metrics.js';
import { continuationQuality, meanKL, perplexity, top1Agreement } from '../src/eval/quality.js';
import { rougeL, rougeLScores } from '../src/eval/rouge.js';
import { ArgumentError, ShapeError } from '../src/runtime/errors.js';

interface Fx {
  normalize: { text: string; normalized: string }[];
  qa: { prediction: string; answers: string[]; f1: number; em: number }[];
  rougeL: { prediction: string; reference: string; f: number }[];
  classification: { prediction: string; reference: string; allClasses: string[]; score: number }[];
  count: { prediction: string; reference: string; score: number }[];
  retrieval: { prediction: string; reference: string; score: number }[];
  scorer: { dataset: string; prediction: string; answers: string[]; allClasses: string[]; score: number }[];
}
const fx = JSON.parse(readFileSync(new URL('./fixtures/longbench-metrics.json', import.meta.url), 'utf8')) as Fx;
const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12, `${what}: kvlab ${a} vs LongBench ${b}`);

test('normalizeAnswer equals LongBench normalize_answer (punctuation, articles, unicode, Python whitespace)', () => {
  assert.ok(fx.normalize.length >= 15);
  for (const c of fx.normalize) assert.is(normalizeAnswer(c.text), c.normalized, JSON.stringify(c.text));
});

test('qaF1 / exactMatch equal LongBench qa_f1_score (max over answers) on the pinned examples', () => {
  for (const c of fx.qa) {
    close(qaF1(c.prediction, c.answers), c.f1, `f1 ${JSON.stringify(c.prediction)}`);
    assert.is(exactMatch(c.prediction, c.answers), c.em, `em ${JSON.stringify(c.prediction)}`);
  }
});

test('rougeL equals the rouge package Rouge-L F as LongBench calls it (0 where it raises)', () => {
  assert.ok(fx.rougeL.length >= 15);
  for (const c of fx.rougeL) close(rougeL(c.prediction, c.reference), c.f, `rougeL ${JSON.stringify([c.prediction, c.reference])}`);
  assert.is(rougeLScores('', 'x'), null);
  const s = rougeLScores('a b c', 'a c')!;
  close(s.p, 2 / 3, 'p');
  close(s.r, 1, 'r');
});

test('classification, count, retrieval and dataset-level scorer equal LongBench', () => {
  for (const c of fx.classification) close(classificationScore(c.prediction, c.reference, c.allClasses), c.score, `class ${c.prediction}`);
  for (const c of fx.count) close(countScore(c.prediction, c.reference), c.score, `count ${c.prediction}`);
  for (const c of fx.retrieval) close(retrievalScore(c.prediction, c.reference), c.score, `retrieval ${c.prediction}`);
  for (const c of fx.scorer) close(longbenchScore(c.dataset, c.prediction, c.answers, c.allClasses), c.score, `scorer ${c.dataset}`);
  assert.throws(() => longbenchScore('lcc', 'x', ['y']), (e: unknown) => e instanceof ArgumentError);
});

test('perplexity, KL and top-1 on hand-worked logits', () => {
  // Two rows over a vocabulary of 2: uniform, then log-odds ln 3 (p = 3/4, 1/4).
  const exact = new Float32Array([0, 0, Math.log(3), 0]);
  // nll(row0, 0) = ln 2; nll(row1, 1) = ln 4 -> ppl = exp((ln 2 + ln 4) / 2) = sqrt(8).
  assert.ok(Math.abs(perplexity(exact, 2, [0, 1]) - Math.sqrt(8)) < 1e-6);
  const method = new Float32Array([0, 0, 0, 0]);
  // KL(row1) = 3/4 ln(3/4 / 1/2) + 1/4 ln(1/4 / 1/2) = 0.75 ln 1.5 - 0.25 ln 2; row0 = 0.
  const kl = (0.75 * Math.log(1.5) - 0.25 * Math.log(2)) / 2;
  assert.ok(Math.abs(meanKL(exact, method, 2) - kl) < 1e-6);
  assert.is(top1Agreement(exact, new Float32Array([1, 0, 0, 1]), 2), 0.5);
  const q = continuationQuality(exact, method, 2, [0, 1]);
  assert.ok(Math.abs(q.pplMethod - 2) < 1e-6);
  assert.ok(Math.abs(q.pplDeltaPct - (2 / Math.sqrt(8) - 1) * 100) < 1e-4);
  assert.throws(() => perplexity(exact, 3, [0]), (e: unknown) => e instanceof ShapeError);
  assert.throws(() => perplexity(exact, 2, [5]), (e: unknown) => e instanceof ShapeError);
});

test('TTFT and size summaries', () => {
  const s = summarize([4, 1, 3, 2]);
  assert.equal([s.n, s.mean, s.median, s.min, s.max], [4, 2.5, 2.5, 1, 4]);
  assert.ok(Math.abs(s.p90 - 3.7) < 1e-12);
  assert.is(ttftSummary([100, 300, 600, 900], 500).sloViolation, 0.5);
  const z = sizeSummary([1000, 1000], [4000, 4000]);
  assert.equal([z.bitsPerValue, z.ratioVsFp16, z.ratioVsInt8], [2, 8, 4]);
  assert.throws(() => summarize([]), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => summarize([NaN]), (e: unknown) => e instanceof ArgumentError);
});

test.run();
