// kvlab's multi-document QA: the generator (datasets/multidoc-qa: determinism, schema, the
// introducing-chunk ordering invariant, the committed held-out sets), the prompt format
// (src/eval/qa/prompt.ts) and its round trip, the JSONL reader's errors, and the bundled model
// models/kvlab-qa against PyTorch (test/fixtures/qa-parity.json: prompt token ids, greedy answers,
// first-answer-token logits measured by tools/train_qa.py).
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkRoles, generateRecord, generateSet, generateTrainingExample, QA_KINDS } from '../datasets/multidoc-qa/generator.js';
import { precomputeChunks } from '../src/cacheblend/precompute.js';
import { answerFullPrefill, answerFused } from '../src/eval/qa/answer.js';
import { checkQaRecord, readQaSet, type QaRecord } from '../src/eval/qa/dataset.js';
import { qaEval } from '../src/eval/qa/eval.js';
import { joinPrompt, promptLength, promptText, splitPrompt, tokenizePrompt } from '../src/eval/qa/prompt.js';
import { exactMatch } from '../src/eval/metrics.js';
import { main } from '../src/cli/main.js';
import type { CliIO } from '../src/cli/command.js';
import { loadModel } from '../src/model/load.js';
import { ArgumentError, FormatError } from '../src/runtime/errors.js';

const ROOT = new URL('..', import.meta.url).pathname;
const SET = join(ROOT, 'datasets', 'multidoc-qa', 'v1');

test('generator: same (seed, kind, index) gives the same record; other seeds differ', () => {
  for (const kind of QA_KINDS) {
    assert.equal(generateSet(5, kind, 4), generateSet(5, kind, 4));
    assert.equal(generateRecord(5, kind, 3), generateSet(5, kind, 4)[3]);
    assert.not.equal(generateRecord(5, kind, 0).context, generateRecord(6, kind, 0).context);
  }
});

test('generator: the committed held-out sets are what the generator makes (make.ts heldout, seed 1001)', () => {
  for (const kind of QA_KINDS) {
    const committed = readQaSet(join(SET, `${kind}.jsonl`));
    assert.is(committed.length, 100);
    assert.equal(committed, generateSet(1001, kind, 100));
  }
});

function checkRecord(r: QaRecord, chunks: readonly [number, number] = [4, 6]): void {
  checkQaRecord(r, r._id);
  assert.ok(r.chunks.length >= chunks[0] && r.chunks.length <= chunks[1], `${r._id}: ${r.chunks.length} chunks`);
  assert.is(r.answers.length, 1);
  const words = r.answers[0]!.split(' ').length;
  assert.ok(words >= 1 && words <= 3, `${r._id}: answer '${r.answers[0]}'`);
  assert.is(r.length, r.context.split(/\s+/).length);
  assert.is(r.evidence.length, r.kind === 'single' ? 1 : 2, r._id);
  // The answer is written in an evidence chunk (the last hop's).
  assert.ok(r.evidence.some((i) => r.chunks[i]!.includes(r.answers[0]!)), `${r._id}: answer not in its evidence`);
  const roles = chunkRoles(r);
  // Every ref chunk (a pronoun, no name) follows an intro chunk that names its person.
  roles.forEach((x, i) => {
    if (x.type === 'ref') assert.ok(roles.slice(0, i).some((y) => y.type === 'intro'), `${r._id}: ref chunk ${i} has no intro before it`);
  });
  if (r.kind === 'back-reference') {
    const [intro, ref] = r.evidence as [number, number];
    assert.is(roles[intro]!.type, 'intro');
    assert.is(roles[ref]!.type, 'ref');
    assert.ok(intro < ref, `${r._id}: intro after ref`);
    // The pronoun resolves to the nearest intro before it: no other intro in between.
    assert.ok(roles.slice(intro + 1, ref).every((y) => y.type !== 'intro'), `${r._id}: another person introduced between`);
    assert.ok(r.input.includes(roles[intro]!.name!), `${r._id}: the question names someone else`);
    assert.not.ok(r.chunks[ref]!.includes(roles[intro]!.name!), `${r._id}: the ref chunk names its person`);
    // Another ref chunk states the same kind of attribute about someone else (no guessing by elimination).
    assert.ok(roles.filter((y) => y.type === 'ref').length >= 2, `${r._id}: a single ref chunk`);
  }
}

test('generator: schema, evidence and the introducing-chunk ordering invariant (held-out sets and fresh seeds)', () => {
  for (const kind of QA_KINDS) {
    for (const r of readQaSet(join(SET, `${kind}.jsonl`))) checkRecord(r);
    for (const r of generateSet(77, kind, 200)) checkRecord(r);
  }
});

test('generator: --chunks LO-HI keeps the invariants, tops v1 up with named chunks only, and fits the 512 positions', () => {
  for (const range of [[8, 10], [10, 12]] as const) {
    for (const kind of QA_KINDS) {
      const set = generateSet(77, kind, 100, 0, { chunks: range });
      for (const r of set) {
        checkRecord(r, range);
        assert.ok(r._id.startsWith(`v1-c${range[0]}-${range[1]}-s77-${kind}-`), r._id);
        // The extra chunks are self-contained: no more ref chunks than a v1 context can hold (3).
        assert.ok(chunkRoles(r).filter((x) => x.type === 'ref').length <= 3, r._id);
        // The whole training sequence (prompt, answer, EOS) fits kvlab-qa's context.
        const t = tokenizePrompt(tok, promptText(r.chunks, r.input, r.answers[0]));
        assert.ok(promptLength(t) + t.answer.length <= model.config.maxSeqLen, `${r._id}: ${promptLength(t) + t.answer.length} tokens`);
      }
      assert.not.equal(set[0]!.context, generateRecord(77, kind, 0).context);
    }
  }
  assert.throws(() => generateRecord(1, 'single', 0, { chunks: [5, 8] }), (e: unknown) => e instanceof RangeError);
  assert.throws(() => generateRecord(1, 'single', 0, { chunks: [9, 8] }), (e: unknown) => e instanceof RangeError);
});

const PRONOUN_SENTENCE = /^(She|He|Her|His) /;
const ATTR_SENTENCE: Record<string, RegExp> = { pet: /^(She|He) keeps a pet \w+\.$/, instrument: /^(She|He) plays the \w+\.$/, favourite: /^(Her|His) favourite colour is \w+\.$/ };

test('generator: --ref-mix keeps v1\'s selection and invariants, ref chunks are named passages with one or two pronoun sentences', () => {
  for (const range of [undefined, [8, 10]] as const) {
    const o = { refMix: true, ...(range ? { chunks: range } : {}) };
    let dependent = 0, context = 0;
    for (const kind of QA_KINDS) {
      for (const [i, r] of generateSet(77, kind, 100, 0, o).entries()) {
        checkRecord(r, range ?? [4, 6]);
        assert.ok(r._id.startsWith(`v1${range ? `-c${range[0]}-${range[1]}` : ''}-rm-s77-${kind}-`), r._id);
        // Same world, question, selection and order as without the option; only ref chunk texts differ.
        const plain = generateRecord(77, kind, i, range ? { chunks: range } : {});
        assert.equal([r.input, r.answers, r.evidence, chunkRoles(r)], [plain.input, plain.answers, plain.evidence, chunkRoles(plain)], r._id);
        const asked = Object.keys(ATTR_SENTENCE).find((k) => new RegExp(`\\b${k}\\b`).test(r.input));
        const roles = chunkRoles(r);
        r.chunks.forEach((c, ci) => {
          if (roles[ci]!.type !== 'ref') return;
          const sentences = c.split(/(?<=\.) /);
          const pron = sentences.filter((s) => PRONOUN_SENTENCE.test(s));
          assert.match(sentences[0]!, /^The \w+ \w+ stands in \w+\.$/, r._id);
          assert.ok(pron.length >= 1 && pron.length <= 2 && sentences.length - pron.length >= 3, `${r._id}: ${c}`);
          assert.ok(pron.every((s) => Object.values(ATTR_SENTENCE).some((re) => re.test(s))), `${r._id}: ${c}`);
          // Every ref chunk of a back-reference context states the asked attribute (no guessing by elimination).
          if (kind === 'back-reference') assert.ok(pron.some((s) => ATTR_SENTENCE[asked!]!.test(s)), `${r._id}: ${c}`);
          if (kind === 'back-reference') for (const s of pron) dependent += tok.encode(` ${s}`, { bos: false, eos: false }).length;
        });
        const t = tokenizePrompt(tok, promptText(r.chunks, r.input, r.answers[0]));
        if (kind === 'back-reference') context += t.chunks.reduce((a, c) => a + c.length, 0);
        assert.ok(promptLength(t) + t.answer.length <= model.config.maxSeqLen, `${r._id}: ${promptLength(t) + t.answer.length} tokens`);
      }
    }
    // The tokens that need an earlier chunk: about 5.6% (8-10 chunks) to 9.3% (v1's 4-6) of a back-reference context.
    const share = dependent / context;
    assert.ok(share > (range ? 0.04 : 0.06) && share < (range ? 0.07 : 0.11), `pronoun-sentence share ${share}`);
  }
  const ex = generateTrainingExample(7, 'single', 5, 8, { refMix: true, chunks: [8, 10] });
  for (const q of ex.extra) assert.ok(ex.record.chunks.some((c) => c.includes(q.kind === 'back-reference' ? ` ${q.answer}.` : q.answer)), q.input);
});

test('generator: training examples add questions their chunks answer, after the record itself', () => {
  const ex = generateTrainingExample(7, 'back-reference', 3, 8);
  assert.equal(ex.record, generateRecord(7, 'back-reference', 3));
  for (const q of ex.extra) {
    assert.ok(ex.record.chunks.some((c) => c.includes(q.answer)), q.input);
    assert.is.not(q.input, ex.record.input);
  }
});

test('prompt: join and split round trip; segments start with a space; bad input is rejected', () => {
  const r = generateRecord(3, 'two-hop', 1);
  const p = promptText(r.chunks, r.input, r.answers[0]);
  for (const c of p.chunks) assert.ok(c.startsWith(' ') && c.endsWith('\n'));
  assert.equal(splitPrompt(joinPrompt(p)), { chunks: r.chunks, question: r.input, answer: r.answers[0]! });
  assert.equal(splitPrompt(joinPrompt(promptText(r.chunks, r.input))), { chunks: r.chunks, question: r.input, answer: '' });
  assert.throws(() => promptText(['a\nb'], 'q?'), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => promptText([], 'q?'), (e: unknown) => e instanceof ArgumentError);
  assert.throws(() => splitPrompt('no prefix'), (e: unknown) => e instanceof FormatError);
});

test('dataset: a malformed line is a FormatError naming its line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvlab-qa-'));
  const good = JSON.stringify(generateRecord(1, 'single', 0));
  const bad = JSON.stringify({ ...generateRecord(1, 'single', 1), kind: 'riddle' });
  writeFileSync(join(dir, 'a.jsonl'), `${good}\n\n${bad}\n`);
  assert.throws(() => readQaSet(join(dir, 'a.jsonl')), (e: unknown) => e instanceof FormatError && /a\.jsonl:3: "kind"/.test((e as Error).message));
  writeFileSync(join(dir, 'b.jsonl'), `${good}\n{not json\n`);
  assert.throws(() => readQaSet(join(dir, 'b.jsonl')), (e: unknown) => e instanceof FormatError && /b\.jsonl:2: not JSON/.test((e as Error).message));
});

// The bundled model, against what PyTorch measured on the GPU host.
interface Parity { records: { id: string; kind: string; promptIds: number[]; answerIds: number[]; prediction: string; em: number; firstLogitsTop5: [number, number][] }[] }
const parity = JSON.parse(readFileSync(new URL('./fixtures/qa-parity.json', import.meta.url), 'utf8')) as Parity;
const { model, tokenizer } = await loadModel(join(ROOT, 'models', 'kvlab-qa'));
const tok = tokenizer!;
const heldout = new Map(QA_KINDS.flatMap((k) => readQaSet(join(SET, `${k}.jsonl`))).map((r) => [r._id, r]));

test('model: kvlab tokenizes the held-out prompts exactly as the Python tokenizer did', () => {
  for (const p of parity.records) {
    const r = heldout.get(p.id)!;
    const t = tokenizePrompt(tok, promptText(r.chunks, r.input));
    assert.equal([...t.prefix, ...t.chunks.flat(), ...t.query], p.promptIds, p.id);
    assert.ok(promptLength(t) < model.config.maxSeqLen);
  }
});

test('model: full-prefill greedy answers equal PyTorch\'s and are mostly right', () => {
  let right = 0, rightThere = 0;
  for (const p of parity.records.slice(0, 16)) {
    rightThere += p.em;
    const r = heldout.get(p.id)!;
    const a = answerFullPrefill(model, tokenizePrompt(tok, promptText(r.chunks, r.input)));
    assert.equal(a.tokens, p.answerIds, p.id);
    // Logits: f32 here vs f32 (cuBLAS) there, both from the bf16 weights.
    const scale = Math.abs(p.firstLogitsTop5[0]![1]);
    for (const [j, v] of p.firstLogitsTop5) assert.ok(Math.abs(a.firstLogits[j]! - v) <= 2e-3 * scale, `${p.id}: logit ${j} ${a.firstLogits[j]} vs ${v}`);
    right += exactMatch(tok.decode(a.tokens), r.answers);
  }
  assert.is(right, rightThere);
  assert.ok(right >= 12, `${right}/16 right`);
});

test('model: answers decoded from the fused cache (full recompute) equal full prefill\'s', () => {
  const r = heldout.get('v1-s1001-back-reference-0')!;
  const t = tokenizePrompt(tok, promptText(r.chunks, r.input));
  const chunks = precomputeChunks(model, t.prefix, t.chunks);
  try {
    const full = answerFullPrefill(model, t);
    const fused = answerFused(model, t.prefix, chunks, t.query, 'full-recompute');
    assert.equal(fused.tokens, full.tokens);
    assert.is(fused.computeFraction, 1);
    assert.is(answerFused(model, t.prefix, chunks, t.query, 'full-reuse').computeFraction, 0);
  } finally {
    for (const c of chunks) c.dispose();
  }
});

test('qaEval: rows per method and kind with ratio and compute fraction; bad ratios are rejected', () => {
  const recs = [heldout.get('v1-s1001-single-0')!, heldout.get('v1-s1001-back-reference-0')!];
  const rows = qaEval(model, tok, recs, { fixedMethods: ['full-recompute', 'full-reuse'], ratioMethods: ['cacheblend'], ratios: [0.5] });
  assert.is(rows.length, 3 * 3); // 3 methods x (single, back-reference, all)
  const full = rows.find((x) => x.method === 'full-recompute' && x.kind === 'all')!;
  assert.is(full.questions, 2);
  assert.is(full.computeFraction, 1);
  const cb = rows.find((x) => x.method === 'cacheblend' && x.kind === 'single')!;
  assert.is(cb.requestedRatio, 0.5);
  assert.ok(Math.abs(cb.ratio - 0.5) < 0.02 && cb.computeFraction > cb.ratio);
  assert.throws(() => qaEval(model, tok, recs, { ratios: [1.5] }), (e: unknown) => e instanceof ArgumentError);
});

test('kvlab qa eval: finds the bundled model with no model folder configured; JSON rows; typed errors', async () => {
  const out: string[] = [], err: string[] = [];
  const io: CliIO = { out: (t) => out.push(t), write: (t) => out.push(t), err: (t) => err.push(t), env: {}, cwd: process.cwd() };
  assert.is(await main(['qa', 'eval', '--per-kind', '1', '--methods', 'full-recompute,cacheblend', '--ratios', '0.15', '--json'], io), 0);
  const j = JSON.parse(out.join('')) as { model: string; questions: number; rows: { method: string; kind: string; em: number; computeFraction: number }[] };
  assert.is(j.model, 'kvlab-qa');
  assert.is(j.questions, 3);
  assert.is(j.rows.length, 2 * 4);
  assert.ok(j.rows.every((r) => r.em >= 0 && r.em <= 1 && r.computeFraction > 0));
  assert.is(await main(['qa', 'eval', '--methods', 'bogus'], io), 2);
  assert.match(err.join('\n'), /unknown method 'bogus'/);
  assert.is(await main(['qa', 'eval', '--set', '/no/such/dir'], io), 1);
  // One kind and the cacheblend knobs: a deeper check layer recomputes more (compute fraction).
  const cf: number[] = [];
  for (const check of ['1', '3']) {
    out.length = 0;
    assert.is(await main(['qa', 'eval', '--kinds', 'back-reference', '--per-kind', '1', '--methods', 'cacheblend', '--ratios', '0.15',
      '--check-layer', check, '--deviation', 'v', '--json'], io), 0);
    const k = JSON.parse(out.join('')) as { questions: number; policyOptions: Record<string, unknown>; rows: { kind: string; computeFraction: number }[] };
    assert.is(k.questions, 1);
    assert.equal(k.policyOptions, { checkLayer: Number(check), deviation: 'v' });
    assert.equal(k.rows.map((r) => r.kind).sort(), ['all', 'back-reference']);
    cf.push(k.rows[0]!.computeFraction);
  }
  assert.ok(cf[1]! > cf[0]!);
  assert.is(await main(['qa', 'eval', '--kinds', 'trivia'], io), 2);
  assert.is(await main(['qa', 'eval', '--deviation', 'q'], io), 2);
  assert.is(await main(['qa', 'eval', '--per-kind', '1', '--methods', 'cacheblend', '--check-layer', '99'], io), 2);
  assert.match(err.join('\n'), /unknown kind 'trivia'[\s\S]*--deviation must be[\s\S]*check layer 99/);
});

test.after(() => model.dispose());
test.run();
