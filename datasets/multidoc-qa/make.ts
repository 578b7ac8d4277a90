/**
 * Writes kvlab's multi-document QA sets (see CARD.md):
 *
 *   node --import tsx datasets/multidoc-qa/make.ts heldout [--count 100] [--seed 1001] [--chunks LO-HI] [--ref-mix] [--out datasets/multidoc-qa/v1]
 *       LongBench-schema JSONL, one file per question kind (<out>/<kind>.jsonl)
 *   node --import tsx datasets/multidoc-qa/make.ts train --count N [--start I] [--seed 7] [--extra K] [--chunks LO-HI] [--ref-mix] --out FILE
 *       training prompts I..I+N-1 (segment texts of src/eval/qa/prompt.ts), kinds interleaved, each
 *       with up to K more questions on the same passages ("extra": [{kind, query, answer}]); shards
 *       written with consecutive --start values and concatenated equal one run over all of them
 *   node --import tsx datasets/multidoc-qa/make.ts prompts FILE.jsonl... --out FILE
 *       the same segment lines for existing LongBench-schema records (the held-out sets)
 *
 * --chunks LO-HI (6 <= LO <= HI <= 30): LO..HI chunks per context, the v1 selection topped up with
 * self-contained distractors (generator.ts, GeneratorOptions), and the heldout default --out becomes
 * datasets/multidoc-qa/v1-cLO-HI; without it, v1's 4-6 chunks.
 * --ref-mix: ref chunks as mostly self-contained passages about a named landmark with one or two
 * pronoun sentences about the person (GeneratorOptions.refMix); the heldout default --out gains
 * "-rm" (e.g. datasets/multidoc-qa/v1-c8-10-rm).
 *
 * A segment line: {"id", "kind", "prefix", "chunks": [...], "query", "answer", "answers": [...]}; the
 * training tool tokenizes each segment on its own and adds BOS / EOS as prompt.ts says.
 */
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { promptText } from '../../src/eval/qa/prompt.js';
import { generateSet, generateTrainingExample, QA_KINDS, type ExtraQuestion, type GeneratorOptions, type QaRecord } from './generator.js';

function segmentLine(r: QaRecord, extra: ExtraQuestion[] = []): string {
  const p = promptText(r.chunks, r.input, r.answers[0]!);
  const more = extra.map((q) => {
    const e = promptText(r.chunks, q.input, q.answer);
    return { kind: q.kind, query: e.query, answer: e.answer };
  });
  return JSON.stringify({ id: r._id, kind: r.kind, prefix: p.prefix, chunks: p.chunks, query: p.query, answer: p.answer, answers: r.answers,
    ...(more.length ? { extra: more } : {}) });
}

async function writeLines(path: string, lines: Iterable<string>): Promise<void> {
  const out = createWriteStream(path);
  for (const l of lines) if (!out.write(l + '\n')) await new Promise((res) => out.once('drain', res));
  await new Promise<void>((res, rej) => out.end((e?: Error | null) => (e ? rej(e) : res())));
}

const { values: v, positionals: [cmd, ...files] } = parseArgs({
  allowPositionals: true,
  options: { count: { type: 'string' }, start: { type: 'string' }, extra: { type: 'string' }, seed: { type: 'string' }, out: { type: 'string' },
    chunks: { type: 'string' }, 'ref-mix': { type: 'boolean' } },
});

function generatorOptions(): GeneratorOptions {
  const o: GeneratorOptions = v['ref-mix'] ? { refMix: true } : {};
  if (v.chunks === undefined) return o;
  const m = /^(\d+)-(\d+)$/.exec(v.chunks);
  if (!m) throw new Error(`--chunks must be LO-HI (e.g. 8-10), got '${v.chunks}'`);
  return { ...o, chunks: [Number(m[1]), Number(m[2])] };
}
const gen = generatorOptions();

if (cmd === 'heldout') {
  const dir = v.out ?? join('datasets', 'multidoc-qa', (gen.chunks ? `v1-c${gen.chunks[0]}-${gen.chunks[1]}` : 'v1') + (gen.refMix ? '-rm' : ''));
  const count = Number(v.count ?? 100), seed = Number(v.seed ?? 1001);
  mkdirSync(dir, { recursive: true });
  for (const kind of QA_KINDS)
    writeFileSync(join(dir, `${kind}.jsonl`), generateSet(seed, kind, count, 0, gen).map((r) => JSON.stringify(r)).join('\n') + '\n');
  console.log(`wrote ${count} records per kind to ${dir} (seed ${seed})`);
} else if (cmd === 'train') {
  if (!v.out || !v.count) throw new Error('train needs --count N and --out FILE');
  const count = Number(v.count), start = Number(v.start ?? 0), seed = Number(v.seed ?? 7), maxExtra = Number(v.extra ?? 0);
  function* lines() {
    for (let i = start; i < start + count; i++) {
      const ex = generateTrainingExample(seed, QA_KINDS[i % QA_KINDS.length]!, Math.floor(i / QA_KINDS.length), maxExtra, gen);
      yield segmentLine(ex.record, ex.extra);
    }
  }
  await writeLines(v.out, lines());
  console.log(`wrote training prompts ${start}..${start + count - 1} to ${v.out} (seed ${seed})`);
} else if (cmd === 'prompts') {
  if (!v.out || files.length === 0) throw new Error('prompts needs FILE.jsonl... and --out FILE');
  const recs = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as QaRecord));
  await writeLines(v.out, recs.map((r) => segmentLine(r)));
  console.log(`wrote ${recs.length} prompts to ${v.out}`);
} else {
  console.error('usage: make.ts heldout|train|prompts ... (see the file comment)');
  process.exitCode = 2;
}
