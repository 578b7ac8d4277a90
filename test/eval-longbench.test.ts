// LongBench JSONL reading (src/eval/longbench.ts): the shipped sample, every malformed-line case
// reported with file and line number, passage splitting, token chunks, BM25 top-k.
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LongBenchFormatError, parseLongBench, readLongBench, retrieveContext, splitPassages, tokenChunks, topKPassages } from '../src/eval/longbench.js';
import { Llama2cTokenizer } from '../src/model/llama2c.js';
import { FormatError } from '../src/runtime/errors.js';
import { STORIES_TOK } from './support/models.js';

const SAMPLE = fileURLToPath(new URL('../datasets/longbench-sample/sample.jsonl', import.meta.url));
const tok = await Llama2cTokenizer.load(STORIES_TOK, { vocabSize: 512 });
const good = { input: 'q?', context: 'c', answers: ['a'], length: 1, dataset: 'hotpotqa', language: 'en', all_classes: null, _id: 'x1' };
const line = (o: unknown) => JSON.stringify(o);

test('the shipped sample reads: six records with every field', () => {
  const r = readLongBench(SAMPLE);
  assert.is(r.length, 6);
  assert.equal(r.map((x) => x.line), [1, 2, 3, 4, 5, 6]);
  assert.is(r[0]!.id, 'lbs-hotpot-0001');
  assert.equal(r[2]!.answers, ['twelve', '12']);
  assert.is(r[0]!.allClasses, null);
});

test('malformed lines: a LongBenchFormatError naming file and line, never skipped', () => {
  const cases: [string, RegExp][] = [
    [`${line(good)}\n{not json\n`, /f\.jsonl:2: not valid JSON/],
    [`${line(good)}\n\n${line({ ...good, _id: 'x2', answers: 'a' })}`, /f\.jsonl:3: field 'answers'/],
    [line({ ...good, answers: [] }), /:1: field 'answers' must be a non-empty array/],
    [line({ ...good, length: -1 }), /:1: field 'length'/],
    [line({ ...good, all_classes: [1] }), /:1: field 'all_classes'/],
    [line((({ context: _c, ...rest }) => rest)(good)), /:1: missing field 'context'/],
    [`${line(good)}\n${line(good)}`, /:2: _id 'x1' already used on line 1/],
    ['[1,2]', /:1: expected a JSON object/],
  ];
  for (const [text, re] of cases) {
    try {
      parseLongBench(text, 'f.jsonl');
      assert.unreachable(`accepted ${text}`);
    } catch (e) {
      assert.ok(e instanceof LongBenchFormatError && e instanceof FormatError, String(e));
      assert.match((e as Error).message, re);
    }
  }
  assert.throws(() => parseLongBench('\n\n', 'f.jsonl'), (e: unknown) => e instanceof FormatError);
  assert.is(parseLongBench(`${line(good)}\n`, 'f.jsonl').length, 1);
});

test('splitPassages: LongBench markers, else blank lines', () => {
  assert.equal(splitPassages('Passage 1:\nA b.\nPassage 2:\nC d.\n'), ['Passage 1:\nA b.', 'Passage 2:\nC d.']);
  assert.equal(splitPassages('Intro\nParagraph 1: x\nParagraph 2: y'), ['Intro', 'Paragraph 1: x', 'Paragraph 2: y']);
  assert.equal(splitPassages('one\n\n  \ntwo\nstill two\n\n'), ['one', 'two\nstill two']);
});

test('token chunks and BM25 top-k keep the relevant passages in order', () => {
  const ids = tok.encode('Once upon a time there was a little girl named Lily.', { bos: false });
  const ch = tokenChunks('Once upon a time there was a little girl named Lily.', tok, 5);
  assert.equal(ch.flat(), ids);
  assert.ok(ch.slice(0, -1).every((c) => c.length === 5));
  const passages = ['The cat sat on the mat.', 'Lily found a red ball in the park.', 'A dog ran.', 'The ball was red and Lily was happy.'];
  assert.equal(topKPassages('What color was the ball Lily found?', passages, 2), [1, 3]);
  const [rec] = readLongBench(SAMPLE);
  const r = retrieveContext(rec!, { tokenizer: tok, topK: 2, chunkTokens: 48, maxContextTokens: 80 });
  assert.ok(r.kept.includes(1), `kept ${r.kept}`);
  assert.ok(r.chunks.flat().length <= 80 && r.chunks.every((c) => c.length <= 48));
  assert.match(tok.decode(r.chunks[r.kept.indexOf(1)]!), /Lily/);
});

test.run();
