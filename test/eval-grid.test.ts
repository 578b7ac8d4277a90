// Experiment grids (src/eval/grid): spec validation and expansion, a run over the stories260K blend
// set and the LongBench sample with CacheBlend over (test-double) codec-compressed chunks, and
// resumability: an interrupted run keeps its finished cells, a rerun computes only the rest, a torn
// last line of cells.jsonl is dropped and recomputed, a corrupt middle line is a FormatError.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as aq from 'arquero';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CliIO } from '../src/cli/command.js';
import { main } from '../src/cli/main.js';
import { GRID_COLUMNS, runGrid } from '../src/eval/grid/runner.js';
import { checkGridSpec, expandGrid, readGridSpec, type GridSpec } from '../src/eval/grid/spec.js';
import { datasetKind, datasetKinds } from '../src/eval/grid/datasets.js';
import { Llama2cTokenizer, loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { FormatError } from '../src/runtime/errors.js';
import { codecDouble } from './support/codec-double.js';
import { STORIES_BIN, STORIES_TOK } from './support/models.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const weights = await loadLlama2c(STORIES_BIN);
const tokenizer = await Llama2cTokenizer.load(STORIES_TOK, { vocabSize: 512 });
let loads = 0;
const loadModel = async () => { loads++; return { model: Model.fromWeights(weights), tokenizer }; };
const codecs = { fp16: codecDouble('fp16', 'f16'), 'int8-token': codecDouble('int8-token', 'int8') };
const codec = (n: string) => codecs[n as keyof typeof codecs];

const spec: GridSpec = checkGridSpec({
  name: 't', version: 1, models: ['stories260K'],
  datasets: [{ kind: 'stories260k-blend', path: 'datasets/stories260k-blend/v1.json', limit: 1 },
    { kind: 'longbench', path: 'datasets/longbench-sample/sample.jsonl', limit: 1, options: { topK: 2, chunkTokens: 40, maxNewTokens: 4 } }],
  methods: ['full-recompute', 'full-reuse', 'cacheblend'], ratios: [0.3],
  codecs: [{ codec: 'none' }, { codec: 'int8-token', levels: ['all'] }], codecMethods: ['cacheblend'],
}, 'inline', root);

test('spec: validation errors name the problem; expansion applies ratios and codecs where they belong', () => {
  const bad = (d: object, re: RegExp) => {
    try { checkGridSpec({ name: 'x', version: 1, models: ['m'], datasets: [{ kind: 'k', path: 'p' }], methods: ['full-reuse'], ...d }, 's.json'); assert.unreachable(); }
    catch (e) { assert.ok(e instanceof FormatError, String(e)); assert.match((e as Error).message, re); }
  };
  bad({ methods: ['nope'] }, /unknown method 'nope'/);
  bad({ methods: ['cacheblend'], ratios: [] }, /'ratios' is empty/);
  bad({ ratios: [1.5] }, /'ratios' must be/);
  bad({ datasets: [{ kind: 'k', path: 'p', limit: 0 }] }, /limit/);
  bad({ codecMethods: ['cacheblend'] }, /codecMethods/);
  const cells = expandGrid(spec, () => ['q8', 'q6']);
  // per dataset: full-recompute, full-reuse, cacheblend@0.3, cacheblend@0.3 over int8 q8 and q6.
  assert.is(cells.length, 2 * 5);
  assert.equal(cells.slice(0, 5).map((c) => `${c.method}/${c.codec}/${c.level}/${c.ratio}`),
    ['full-recompute/none/null/null', 'full-reuse/none/null/null', 'cacheblend/none/null/0.3', 'cacheblend/int8-token/q8/0.3', 'cacheblend/int8-token/q6/0.3']);
  assert.equal(datasetKinds().sort(), ['longbench', 'multidoc-qa', 'stories260k-blend']);
  const quick = readGridSpec(join(root, 'datasets/grids/quick.json'));
  assert.ok(quick.datasets.every((d) => d.path.startsWith(root)));
});

test('multidoc-qa kind: items in src/eval/qa prompt format, scored by F1/EM', () => {
  const model = Model.fromWeights(weights);
  try {
    const ds = datasetKind('multidoc-qa').load({ kind: 'multidoc-qa', path: join(root, 'datasets/multidoc-qa/v1/single.jsonl'), limit: 2 }, { model, tokenizer });
    assert.is(ds.items.length, 2);
    const rec = JSON.parse(readFileSync(join(root, 'datasets/multidoc-qa/v1/single.jsonl'), 'utf8').split('\n')[0]!) as { answers: string[]; chunks: string[] };
    const it = ds.items[0]!;
    assert.is(it.chunks.length, rec.chunks.length);
    assert.equal(it.score!(` ${rec.answers[0]}`), { f1: 1, em: 1 });
    assert.equal(it.score!('nothing like it'), { f1: 0, em: 0 });
  } finally {
    model.dispose();
  }
});

test('cachegen-pca in a grid: its basis and tables built from the profile set, its levels resolved without a registry entry', async () => {
  const pcaSpec = checkGridSpec({
    name: 'p', version: 1, models: ['stories260K'],
    datasets: [{ kind: 'stories260k-blend', path: 'datasets/stories260k-blend/v1.json', limit: 1 }],
    methods: ['full-reuse'], ratios: [],
    codecs: [{ codec: 'none' }, { codec: 'cachegen-pca', levels: ['high', 'lowest'], profile: 'datasets/stories260k-codec/v1.json' }],
  }, 'inline', root);
  const out = mkdtempSync(join(tmpdir(), 'kvlab-grid-'));
  try {
    const r = await runGrid(pcaSpec, { outDir: out, loadModel, codec });
    const pca = r.rows.filter((x) => x.codec === 'cachegen-pca');
    assert.equal(pca.map((x) => x.level), ['high', 'lowest']);
    for (const x of pca) assert.match(String(x.profile), /^cachegen-pca-/);
    const kl = (lv: string) => pca.find((x) => x.level === lv)!.kl as number;
    const bits = (lv: string) => pca.find((x) => x.level === lv)!.bitsPerValue as number;
    assert.ok(bits('lowest') < bits('high') && kl('lowest') > kl('high'), 'the coarser level is smaller and worse');
    const noProfile = checkGridSpec({ ...pcaSpec, codecs: [{ codec: 'cachegen-pca', levels: ['high'] }], methods: ['full-reuse'] }, 'inline', root);
    await runGrid(noProfile, { outDir: join(out, 'no-profile'), loadModel, codec }).then(
      () => assert.unreachable('a cachegen-pca cell without a profile ran'),
      (e: unknown) => assert.match(String(e), /needs a "profile"/));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('run, interrupt, rerun: finished cells are never recomputed; rows through arquero', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kvlab-grid-'));
  try {
    const first = await runGrid(spec, { outDir: out, loadModel, codec, maxCells: 3 });
    assert.equal([first.total, first.computed, first.skipped, first.stopped], [10, 3, 0, true]);
    const lines = () => readFileSync(first.files.jsonl, 'utf8').trim().split('\n');
    assert.is(lines().length, 3);
    const before = first.rows.map((r) => r.finishedAt);

    let progress = 0;
    const second = await runGrid(spec, { outDir: out, loadModel, codec, onProgress: () => { progress++; } });
    assert.equal([second.computed, second.skipped, second.stopped], [7, 3, false]);
    assert.equal(second.rows.slice(0, 3).map((r) => r.finishedAt), before, 'finished cells were kept, not recomputed');
    assert.is(lines().length, 10);
    assert.ok(progress >= 14);

    const loadsBefore = loads;
    const third = await runGrid(spec, { outDir: out, loadModel, codec });
    assert.equal([third.computed, third.skipped], [0, 10]);
    assert.is(loads, loadsBefore, 'a finished grid does not even load the model');

    // Rows: quality vs full prefill, and CacheBlend over int8-compressed chunks.
    const row = (ds: string, m: string, c = 'none', l: string | null = null) => third.rows.find((r) => r.datasetKind === ds && r.method === m && r.codec === c && r.level === l)!;
    const exact = row('stories260k-blend', 'full-recompute');
    assert.equal([exact.kl, exact.pplDeltaPct, exact.top1], [0, 0, 1]);
    const reuse = row('stories260k-blend', 'full-reuse'), blend = row('stories260k-blend', 'cacheblend');
    assert.ok((reuse.kl as number) > (blend.kl as number) && (blend.kl as number) > 0);
    const q8 = row('stories260k-blend', 'cacheblend', 'int8-token', 'q8'), q6 = row('stories260k-blend', 'cacheblend', 'int8-token', 'q6');
    assert.ok((q8.bitsPerValue as number) > 8 && (q8.bitsPerValue as number) < 10 && Math.abs((q8.ratioVsFp16 as number) - 16 / (q8.bitsPerValue as number)) < 1e-12);
    assert.ok((q6.kl as number) > (blend.kl as number), `over q6 chunks ${q6.kl} vs exact chunks ${blend.kl}`);
    const lb = row('longbench', 'full-recompute');
    assert.equal([lb.agreementF1, lb.firstTokenKL, lb.top1], [1, 0, 1]);
    assert.ok(typeof lb.f1 === 'number' && typeof lb.em === 'number' && typeof lb.score === 'number');

    const csv = aq.fromCSV(readFileSync(third.files.csv, 'utf8'));
    assert.equal(csv.columnNames().slice(0, GRID_COLUMNS.length), [...GRID_COLUMNS]);
    assert.is(csv.numRows(), 10);
    assert.is((JSON.parse(readFileSync(third.files.json, 'utf8')) as unknown[]).length, 10);

    // A write cut short: the torn last line is dropped and its cell recomputed.
    const all = readFileSync(first.files.jsonl, 'utf8').trim().split('\n');
    writeFileSync(first.files.jsonl, all.slice(0, 9).join('\n') + '\n' + all[9]!.slice(0, 40));
    const fourth = await runGrid(spec, { outDir: out, loadModel, codec });
    assert.equal([fourth.computed, fourth.skipped, fourth.droppedPartialLine], [1, 9, true]);
    // A complete last line missing its newline is kept, and the next append starts a new line.
    writeFileSync(first.files.jsonl, all.slice(0, 9).join('\n') + '\n' + all[9]!);
    const fifth = await runGrid(spec, { outDir: out, loadModel, codec });
    assert.equal([fifth.computed, fifth.skipped, fifth.droppedPartialLine], [0, 10, false]);
    assert.ok(readFileSync(first.files.jsonl, 'utf8').endsWith('}\n'));
    // A corrupt line that is not the last: an error with its line number.
    writeFileSync(first.files.jsonl, all[0] + '\n{oops\n' + all[1] + '\n');
    try { await runGrid(spec, { outDir: out, loadModel, codec }); assert.unreachable(); }
    catch (e) { assert.ok(e instanceof FormatError); assert.match((e as Error).message, /cells\.jsonl:2/); }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test('kvlab eval GRID --json runs and resumes; codec observe / codec eval --json', async () => {
  const out = mkdtempSync(join(tmpdir(), 'kvlab-grid-cli-'));
  try {
    const specPath = join(out, 'g.json');
    // CacheBlend over the real cachegen codec, with tables shipped per chunk and with a per-model profile.
    writeFileSync(specPath, JSON.stringify({ name: 'cli', version: 1, models: ['stories260K'], methods: ['full-reuse', 'cacheblend'], ratios: [0.2],
      datasets: [{ kind: 'stories260k-blend', path: join(root, 'datasets/stories260k-blend/v1.json'), limit: 1 }],
      codecs: [{ codec: 'none' }, { codec: 'cachegen' }, { codec: 'cachegen', profile: join(root, 'datasets/stories260k-codec/v1.json') }], codecMethods: ['cacheblend'] }));
    const run = async (argv: string[]) => {
      const o: string[] = [], e: string[] = [];
      const x: CliIO = { out: (t) => o.push(t), write: (t) => o.push(t), err: (t) => e.push(t), env: {}, cwd: out };
      return { code: await main(argv, x), out: o.join(''), err: e.join('') };
    };
    const a = await run(['eval', 'g.json', '--out', 'res', '--json']);
    assert.is(a.code, 0, a.err);
    const j = JSON.parse(a.out) as { computed: number; rows: { method: string; codec: string; profile: string | null; bitsPerValue: number | null; profileBytes: number | null; kl: number }[] };
    assert.equal([j.computed, j.rows.map((r) => `${r.method}/${r.codec}/${r.profile !== null}`)], [4, ['full-reuse/none/false', 'cacheblend/none/false', 'cacheblend/cachegen/false', 'cacheblend/cachegen/true']]);
    const [shipped, profiled] = [j.rows[2]!, j.rows[3]!];
    assert.ok(profiled.bitsPerValue! < shipped.bitsPerValue! && profiled.profileBytes! > 0 && shipped.profileBytes === null, JSON.stringify([shipped, profiled]));
    assert.ok(shipped.kl > j.rows[1]!.kl, 'lossy chunks cost quality over exact chunks');
    assert.is(a.err, '', 'no progress output with --json');
    const b = await run(['eval', 'g.json', '--out', 'res']);
    assert.is(b.code, 0);
    assert.match(b.out, /4 cells, 0 computed now, 4 already done/);
    assert.is((await run(['eval'])).code, 2);
    const c = await run(['codec', 'observe', '--contexts', '1', '--json']);
    assert.is(c.code, 0, c.err);
    const obs = JSON.parse(c.out) as Record<string, unknown[]>;
    for (const k of ['distribution', 'deltaVariance', 'sensitivity', 'entropy']) assert.ok(obs[k]!.length > 0, k);
    // With the real codec registry (src/cachegen): fp16 is near-exact; cachegen has per-model profile rows.
    const d = await run(['codec', 'eval', '--contexts', '1', '--codecs', 'fp16,cachegen', '--json']);
    assert.is(d.code, 0, d.err);
    const ev = JSON.parse(d.out) as { rows: { codec: string; level: string; bitsPerValue: number; kl: number; profile: string | null; isDefault: boolean }[]; profiles: { bytes: number }[] };
    const h = ev.rows.find((x) => x.codec === 'fp16')!;
    assert.ok(h.bitsPerValue > 16 && h.bitsPerValue < 17 && h.kl < 1e-5, JSON.stringify(h));
    const cg = ev.rows.filter((x) => x.codec === 'cachegen');
    assert.ok(cg.length >= 2 && cg.some((x) => x.profile !== null) && cg.filter((x) => x.isDefault).length === 1);
    assert.ok(ev.profiles.length >= 1 && ev.profiles.every((p) => p.bytes > 0));
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
