// The report (src/eval/report): fonts found and handed to resvg (a typed error when there are none),
// text really drawn into PNGs, TrueType advance widths for vega's layout, results/ reading with every
// bad file named, and a tiny `reproduce` (one blend context on stories260K, other producers absent)
// that writes index.html listing every figure, PNGs and SVGs, and "data missing" panels.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { CliIO } from '../src/cli/command.js';
import { main } from '../src/cli/main.js';
import { blendFigureData, buildFigures, buildTables, findFonts, FontNotFoundError, produce, readFontMetrics, readResults, reportHtml,
  svgToPng, tableHtml, textWidth, ttftSettingFrom, writeReport, type ReproduceData, type RunLogEntry } from '../src/eval/report/index.js';
import { NotFoundError } from '../src/runtime/errors.js';
import { loadLlama2c } from '../src/model/llama2c.js';
import { Model } from '../src/model/model.js';
import { STORIES_BIN } from './support/models.js';

const tmp = mkdtempSync(join(tmpdir(), 'kvlab-report-'));
const fonts = findFonts();

test('fonts: DejaVu Sans is found; an empty folder is a FontNotFoundError naming the package', () => {
  assert.ok(fonts.files.some((f) => f.endsWith('DejaVuSans.ttf')), fonts.files.join(','));
  const empty = join(tmp, 'no-fonts');
  mkdirSync(empty);
  assert.throws(() => findFonts([empty]), (e: unknown) => e instanceof FontNotFoundError && /fonts-dejavu-core/.test((e as Error).message));
});

test('PNG: text is drawn (pixels differ from the same image without its text)', () => {
  const svg = (t: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><rect width="200" height="40" fill="white"/>` +
    `<text x="5" y="25" font-family="sans-serif" font-size="16" fill="black">${t}</text></svg>`;
  const withText = svgToPng(svg('latency (ms)'), fonts, 1), without = svgToPng(svg(''), fonts, 1);
  assert.equal([...withText.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(''), 'PNG');
  assert.not.ok(withText.equals(without), 'text rendered nothing');
  assert.ok(withText.length > without.length + 100, `${withText.length} vs ${without.length} bytes`);
});

test('font metrics: advance widths from the TrueType tables', () => {
  const m = readFontMetrics(fonts.files[0]!);
  // DejaVu Sans: 'i' 569/2048 em, 'M' 1767/2048 em, ' ' 651/2048 em.
  assert.ok(Math.abs(textWidth(m, 'i', 2048) - 569) < 1, String(textWidth(m, 'i', 2048)));
  assert.ok(Math.abs(textWidth(m, 'M', 2048) - 1767) < 1, String(textWidth(m, 'M', 2048)));
  assert.ok(Math.abs(textWidth(m, ' ', 2048) - 651) < 1);
  const bad = join(tmp, 'bad.ttf');
  writeFileSync(bad, 'not a font');
  assert.throws(() => readFontMetrics(bad), (e: unknown) => e instanceof Error && /not a readable TrueType font/.test((e as Error).message));
});

test('results/: benchmark JSON and the transformers JSONL become points; bad files are named with the reason', () => {
  const dir = join(tmp, 'results');
  mkdirSync(dir);
  writeFileSync(join(dir, 'a.json'), JSON.stringify({ bench: 'prefill', card: 'GPU X', command: 'kvlab bench prefill', date: '2026-01-02T00:00:00Z',
    versions: {}, rows: [{ case: { tokens: 4096 }, metric: 'prefill', value: 100, unit: 'ms', baseline: 'flop-floor', ratioToBaseline: 1.25, floor: 80 }] }));
  writeFileSync(join(dir, 'b.jsonl'), '{"card": "GPU X", "what": "hf transformers sdpa prefill", "tokens": 4096, "ms": 120}\n{oops\n');
  writeFileSync(join(dir, 'c.json'), '{"kvlab": "doctor output"}');
  const r = readResults(dir);
  assert.equal(r.points.length, 1);
  assert.equal(r.points[0]!.floor, 80);
  assert.equal(r.files.find((f) => f.path === 'results/b.jsonl')?.problem?.startsWith('line 2:'), true);
  assert.match(r.files.find((f) => f.path === 'results/c.json')!.problem!, /not benchmark JSON/);
  const s = ttftSettingFrom(r.points, 8192)!;
  assert.ok(Math.abs(s.textPrefillS - 0.2) < 1e-12, 'prefill scaled from 4096 to 8192 tokens');
  assert.equal(readResults(join(tmp, 'nowhere')).files.length, 0);
});

test('HTML tables escape what they print', () => {
  const html = tableHtml({ family: 'run', title: 'a <b> table', rows: [{ x: '<script>alert(1)</script>', y: 1.5 }] });
  assert.not.ok(html.includes('<script>'));
  assert.ok(html.includes('&lt;script&gt;') && html.includes('a &lt;b&gt; table'));
});

test('reproduce on a tiny subset: index.html lists every figure, PNG + SVG each, data missing where producers are absent', async () => {
  const model = Model.fromWeights(await loadLlama2c(STORIES_BIN));
  try {
    const ds = JSON.parse(readFileSync(new URL('../datasets/stories260k-blend/v1.json', import.meta.url), 'utf8'));
    const ctx = { ...ds.contexts[0], chunks: ds.contexts[0].chunks.slice(0, 3) };
    const blend = blendFigureData(model, ds.prefix, [ctx], { ratios: [0.15], sweepContexts: 1, reps: 1 });
    assert.equal(new Set(blend.chunks.map((r) => r.chunks)).size, 3);
    assert.ok(blend.deviation.length > 0 && blend.spearman.length === model.config.nLayers - 1);
    const data: ReproduceData = {
      provenance: { model: 'stories260K', hardware: 'test CPU' }, blend,
      codec: { missing: 'codec eval not run in this test' }, observations: { missing: 'observations not run in this test' },
      stream: { missing: 'stream eval not run in this test' }, qa: { missing: 'qa eval not run in this test' },
      grid: { missing: 'grid not run in this test' },
      results: readResults(new URL('../results', import.meta.url).pathname),
    };
    const figures = buildFigures(data);
    const out = join(tmp, 'report');
    const { index } = await writeReport(out, { title: 'test report', lines: ['tiny'], log: [] }, figures, buildTables(data), fonts);
    const html = readFileSync(index, 'utf8');
    for (const f of figures) {
      assert.ok(html.includes(`id="${f.id}"`), `${f.id} in index.html`);
      for (const ext of ['png', 'svg']) assert.ok(statSync(join(out, 'figures', `${f.id}.${ext}`)).size > 1000, `${f.id}.${ext}`);
    }
    const ids = figures.map((f) => f.id);
    for (const id of ['cacheblend-fig2', 'cacheblend-fig6', 'cacheblend-fig7', 'cacheblend-fig8', 'cacheblend-fig12', 'cacheblend-fig16',
      'cachegen-quality-size', 'cachegen-quality-ttft', 'cachegen-obs-delta', 'cachegen-obs-layers', 'cachegen-obs-entropy', 'streaming-slo', 'bench-prefill'])
      assert.ok(ids.includes(id), id);
    const missing = figures.filter((f) => f.missing).map((f) => f.id);
    for (const id of ['cachegen-quality-size', 'cachegen-obs-entropy', 'streaming-slo']) assert.ok(missing.includes(id), `${id} should say data missing`);
    for (const id of ['cacheblend-fig6', 'cacheblend-fig12', 'bench-prefill']) assert.not.ok(missing.includes(id), `${id} has data`);
    assert.ok(html.includes('data missing: codec eval not run in this test'));
    assert.ok(reportHtml({ title: 't', lines: [], log: [] }, [], []).includes('<h1>t</h1>'));
  } finally {
    model.dispose();
  }
});

test('produce: a throwing producer becomes "data missing" naming the step and the error; the log records it', async () => {
  const log: RunLogEntry[] = [];
  const bad = await produce('codec eval', log, () => { throw new NotFoundError('no codecs'); });
  assert.equal(bad, { missing: 'codec eval failed (NotFoundError: no codecs)' });
  const absent = await produce('stream eval', log, () => ({ missing: 'not built' }));
  assert.equal(absent, { missing: 'not built' });
  assert.equal(await produce('rows', log, async () => [1, 2]), [1, 2]);
  assert.equal(log.map((e) => e.status), ['failed', 'missing', 'ok']);
});

test('kvlab reproduce --help lists its options', async () => {
  let text = '';
  const io: CliIO = { out: (t) => { text += t + '\n'; }, write: (t) => { text += t; }, err: (t) => { text += t + '\n'; }, env: {}, cwd: tmp };
  assert.equal(await main(['reproduce', '--help'], io), 0);
  for (const o of ['--quick', '--out DIR', '--results DIR']) assert.ok(text.includes(o), o);
});

test('cleanup', () => {
  rmSync(tmp, { recursive: true, force: true });
  assert.not.ok(existsSync(tmp));
});

test.run();
