/**
 * `kvlab reproduce [--quick] [--out DIR]`: regenerate the papers' figures. Runs the CPU-feasible
 * producers on the default model, folds in the GPU benchmark JSON under results/, and writes
 * DIR/index.html with every figure (SVG inline, PNG under DIR/figures) and the tables behind them.
 * A producer that is not built yet or fails leaves its figures as "data missing: <why>" panels.
 */
import { join, resolve } from 'node:path';
import { readBlendContextSet } from '../../eval/blend-contexts.js';
import { codecs, getCodec } from '../../cachegen/index.js';
import { readCodecContextSet } from '../../eval/codec-contexts.js';
import { codecEval } from '../../eval/codec-eval.js';
import { pcaProfiles } from '../../eval/codec-profiles.js';
import { isMissing } from '../../eval/figures/figure.js';
import { runGrid } from '../../eval/grid/runner.js';
import { readGridSpec } from '../../eval/grid/spec.js';
import { cachegenObservations } from '../../eval/observations.js';
import { QA_KINDS, readQaSet } from '../../eval/qa/dataset.js';
import { qaFigureData } from '../../eval/report/qa-data.js';
import { streamExperiment } from '../../eval/report/stream-data.js';
import { blendFigureData } from '../../eval/report/blend-data.js';
import { findFonts } from '../../eval/report/fonts.js';
import { writeReport, type RunLogEntry } from '../../eval/report/html.js';
import { readResults } from '../../eval/report/results.js';
import { buildFigures, buildTables, produce, type ReproduceData } from '../../eval/report/reproduce.js';
import { loadModel } from '../../model/load.js';
import { PACKAGE_ROOT } from '../../runtime/addon.js';
import { NotFoundError } from '../../runtime/errors.js';
import { VERSION } from '../../version.js';
import { cardName } from '../bench-json.js';
import { str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';
import { DEFAULT_QA_MODEL } from './qa.js';


/** How much each producer does: --quick keeps the whole run within a few minutes on 2 cores. */
const SIZES = {
  quick: { blendContexts: 3, sweepContexts: 2, reps: 3, obsContexts: 2, codecContexts: 2, traces: 100, qaPerKind: 3, qaRatios: [0.15] },
  full: { blendContexts: Infinity, sweepContexts: 4, reps: 5, obsContexts: Infinity, codecContexts: Infinity, traces: 100, qaPerKind: 10,
    qaRatios: [0.05, 0.15, 0.3, 0.5] },
};

export const reproduceCommand: Command = {
  name: 'reproduce',
  summary: 'Regenerate the papers\' figures: run the CPU pieces, fold in results/, write an HTML report.',
  description: 'Writes DIR/index.html (every figure inline as SVG, with the tables behind it) and DIR/figures/*.{svg,png}.\n' +
    'Figures whose data is absent (a producer not built, or GPU JSON not in results/) say so in their panel.',
  options: {
    quick: { type: 'boolean', help: 'fewer contexts and repetitions (a few minutes on 2 cores)' },
    out: { type: 'string', value: 'DIR', help: 'report folder', default: 'kvlab-report' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    results: { type: 'string', value: 'DIR', help: 'benchmark JSON measured on GPU hosts (default: the package\'s results/)' },
    json: { type: 'boolean', help: 'print a JSON summary (figures, missing panels, log) instead of text' },
  },
  async run(values, _pos, io) {
    const t0 = performance.now();
    const quick = values.quick === true;
    const size = quick ? SIZES.quick : SIZES.full;
    const out = resolve(io.cwd, str(values, 'out')!);
    const resultsDir = str(values, 'results') ? resolve(io.cwd, str(values, 'results')!) : join(PACKAGE_ROOT, 'results');
    const fonts = findFonts();
    // The context sets are token ids of stories260K's vocabulary, so the CPU producers run on it (and
    // the QA figures on the bundled QA model).
    const modelName = 'stories260K';
    const say = (s: string) => { if (!values.json) io.err(`reproduce: ${s}`); };
    const searchPath = modelSearchPath(str(values, 'models'), io);
    const { model } = await loadModel(modelName, { searchPath, device: 'cpu' });
    const log: RunLogEntry[] = [];
    try {
      const hardware = cardName(model.device);
      say(`${modelName} on ${hardware}${quick ? ' (quick)' : ''}`);
      const blend = await produce('blend eval (CacheBlend Figs. 2, 6, 7, 8, 12, 16)', log, () => {
        const ds = readBlendContextSet(join(PACKAGE_ROOT, 'datasets', 'stories260k-blend', 'v1.json'));
        return blendFigureData(model, ds.prefix, ds.contexts, {
          contexts: Math.min(size.blendContexts, ds.contexts.length), sweepContexts: size.sweepContexts, reps: size.reps,
          onStep: (s) => say(`  blend: ${s}`),
        });
      });
      const observations = await produce('CacheGen observations', log, () => {
        say('  cachegen observations');
        const set = readCodecContextSet(join(PACKAGE_ROOT, 'datasets', 'stories260k-codec', 'v1.json'));
        return cachegenObservations(model, set.contexts.slice(0, size.obsContexts));
      });
      const results = readResults(resultsDir);
      const codec = await produce('codec eval (CacheGen quality vs size, vs TTFT)', log, () => {
        say('  codec eval: every codec and level');
        const set = readCodecContextSet(join(PACKAGE_ROOT, 'datasets', 'stories260k-codec', 'v1.json'));
        // cachegen-pca needs its per-model basis and tables, built from the set's profile stories.
        const pca = set.profileContexts ? pcaProfiles(model, set.profileContexts, `${set.name}-v${set.version}`) : null;
        return codecEval(model, set.contexts.slice(0, size.codecContexts), pca ? [...codecs(), pca.codec] : codecs(),
          pca ? { profiles: pca.variants, levels: { [pca.codec.name]: [] } } : {}).rows;
      });
      const stream = await produce('stream eval (SLO violations under bandwidth traces)', log, () =>
        isMissing(codec) ? { missing: `the levels come from codec eval, which did not run (${codec.missing})` }
          : streamExperiment(codec, results.points, size.traces));
      const qa = await produce(`qa eval (F1 per method on ${DEFAULT_QA_MODEL})`, log, async () => {
        let loaded;
        try {
          loaded = await loadModel(DEFAULT_QA_MODEL, { searchPath, device: 'cpu' });
        } catch (e) {
          if (e instanceof NotFoundError) return { missing: `the QA model ${DEFAULT_QA_MODEL} is not found (${e.message.replace(/\s*\n\s*/g, ' ')})` };
          throw e;
        }
        try {
          if (!loaded.tokenizer) return { missing: `${DEFAULT_QA_MODEL} has no tokenizer` };
          say(`  qa eval: ${size.qaPerKind} questions per kind`);
          const records = QA_KINDS.flatMap((k) => readQaSet(join(PACKAGE_ROOT, 'datasets', 'multidoc-qa', 'v1', `${k}.jsonl`)).slice(0, size.qaPerKind));
          return { ...qaFigureData(loaded.model, loaded.tokenizer, records, { ratios: size.qaRatios, reps: size.reps }), model: DEFAULT_QA_MODEL };
        } finally {
          loaded.model.dispose();
        }
      });
      const grid = await produce('eval grid (datasets/grids/quick.json)', log, async () => {
        if (quick) return { missing: 'skipped with --quick (run `kvlab reproduce` or `kvlab eval datasets/grids/quick.json`)' };
        say('  eval grid: datasets/grids/quick.json');
        const spec = readGridSpec(join(PACKAGE_ROOT, 'datasets', 'grids', 'quick.json'));
        const r = await runGrid(spec, {
          outDir: join(out, 'grid'), codec: getCodec,
          loadModel: async (name) => {
            const m = await loadModel(name, { searchPath, device: 'cpu' });
            return { model: m.model, tokenizer: m.tokenizer };
          },
        });
        return { name: spec.name, rows: r.rows };
      });
      const data: ReproduceData = { provenance: { model: modelName, hardware }, blend, codec, observations, stream, qa, grid, results };
      const figures = buildFigures(data);
      const tables = buildTables(data);
      say(`rendering ${figures.length} figures to ${out}`);
      const meta = {
        title: `kvlab ${VERSION}: reproduced figures of CacheBlend and CacheGen`,
        lines: [
          `command: kvlab reproduce ${process.argv.slice(3).join(' ')}`.trim(),
          `CPU producers: ${modelName} on ${hardware}; GPU numbers: results/ (${results.files.length} files)`,
          `generated ${new Date().toISOString()}${quick ? ' with --quick (fewer contexts and repetitions)' : ''}`,
        ],
        log,
      };
      const { index } = await writeReport(out, meta, figures, tables, fonts);
      const seconds = (performance.now() - t0) / 1000;
      const missing = figures.filter((f) => f.missing).map((f) => ({ id: f.id, why: f.missing! }));
      if (values.json) {
        io.out(JSON.stringify({ index, seconds, figures: figures.map((f) => f.id), missing, log }, null, 1));
      } else {
        for (const e of log) io.out(`${e.status.padEnd(8)} ${e.seconds.toFixed(1).padStart(6)} s  ${e.step}${e.detail ? `: ${e.detail}` : ''}`);
        io.out(`${figures.length} figures (${missing.length} with data missing) -> ${index} in ${seconds.toFixed(1)} s`);
      }
      return 0;
    } finally {
      model.dispose();
    }
  },
};
