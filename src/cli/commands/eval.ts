/**
 * `kvlab eval GRID [--out DIR] [--json]`: runs an experiment grid spec (src/eval/grid/spec.ts),
 * resumably: finished cells are appended to DIR/cells.jsonl as they finish, a rerun skips them, and
 * the rows go to DIR/rows.csv and DIR/rows.json at the end. A progress bar on stderr when it is a
 * terminal (none with --json); Ctrl-C stops after the cell in progress, keeping what finished.
 */
import { resolve } from 'node:path';
import { runGrid, type GridProgress } from '../../eval/grid/runner.js';
import { readGridSpec } from '../../eval/grid/spec.js';
import { loadModel } from '../../model/load.js';
import { ArgumentError } from '../../runtime/errors.js';
import { str, type Command } from '../command.js';
import { modelSearchPath } from '../search-path.js';
import { getCodec } from '../../cachegen/index.js';

function bar(p: GridProgress, width = 28): string {
  const inCell = p.cellFinished || p.itemsTotal === 0 ? 0 : p.itemsDone / p.itemsTotal;
  const frac = p.cellsTotal === 0 ? 1 : (p.cellsDone + inCell) / p.cellsTotal;
  const fill = Math.max(0, Math.min(width, Math.round(frac * width)));
  const c = p.cell;
  const what = `${c.method}${c.ratio !== null ? `@${c.ratio}` : ''}${c.codec !== 'none' ? ` over ${c.codec}/${c.level}` : ''} on ${c.dataset.kind}`;
  const item = p.cellFinished ? 'done' : `item ${p.itemsDone}/${p.itemsTotal}`;
  return `\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${p.cellsDone}/${p.cellsTotal} cells  ${item}  ${what}\x1b[K`;
}

export const evalCommand: Command = {
  name: 'eval',
  positionals: 'GRID',
  summary: 'Run an experiment grid (model x dataset x method x codec x level x ratio), resumable; tidy rows to CSV and JSON.',
  description: 'GRID is a JSON spec (see datasets/grids/quick.json and src/eval/grid/spec.ts). Each finished cell is appended to\n' +
    'DIR/cells.jsonl; rerunning with the same --out skips finished cells. Rows: DIR/rows.csv, DIR/rows.json.',
  options: {
    out: { type: 'string', value: 'DIR', help: 'output folder (default: eval-out/<grid name> in the current folder)' },
    models: { type: 'string', value: 'DIR', help: 'a folder to search for models first' },
    device: { type: 'string', value: 'cpu|cuda[:N]', help: 'device for the models (default cpu)' },
    json: { type: 'boolean', help: 'print {"rows": [...], ...} on stdout instead of a summary; no progress bar' },
  },
  async run(values, pos, io) {
    if (pos.length !== 1) throw new ArgumentError('kvlab eval: expected one GRID spec file (see kvlab eval --help)');
    const spec = readGridSpec(resolve(io.cwd, pos[0]!));
    const outDir = resolve(io.cwd, str(values, 'out') ?? `eval-out/${spec.name}`);
    const tty = !values.json && process.stderr.isTTY === true;
    const abort = new AbortController();
    const onSigint = () => abort.abort();
    process.once('SIGINT', onSigint);
    try {
      const r = await runGrid(spec, {
        outDir,
        signal: abort.signal,
        codec: getCodec,
        loadModel: async (name) => {
          const m = await loadModel(name, { searchPath: modelSearchPath(str(values, 'models'), io), device: (str(values, 'device') ?? 'cpu') as never });
          return { model: m.model, tokenizer: m.tokenizer };
        },
        onProgress: tty ? (p) => process.stderr.write(bar(p)) : undefined,
      });
      if (tty) process.stderr.write('\n');
      if (values.json) {
        io.out(JSON.stringify({ grid: spec.name, version: spec.version, out: outDir, total: r.total, computed: r.computed, skipped: r.skipped,
          stopped: r.stopped, files: r.files, rows: r.rows }, null, 1));
      } else {
        io.out(`${spec.name} v${spec.version}: ${r.total} cells, ${r.computed} computed now, ${r.skipped} already done${r.stopped ? ', stopped early (rerun to resume)' : ''}` +
          (r.droppedPartialLine ? '; dropped a cut-off last line of cells.jsonl' : ''));
        io.out(`rows: ${r.files.csv}\n      ${r.files.json}`);
      }
      return r.stopped ? 130 : 0;
    } finally {
      process.removeListener('SIGINT', onSigint);
    }
  },
};
