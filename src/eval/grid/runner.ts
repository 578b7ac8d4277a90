/**
 * `runGrid`: runs every cell of a grid spec, resumably. Each finished cell is appended at once to
 * `<outDir>/cells.jsonl` as {"key", "row"}; a rerun reads that file and skips every cell whose key
 * (its parameters, spec.ts cellKey) is there. A final line cut short by an interrupted write is
 * dropped (and recomputed); any other malformed line is a FormatError with its line number. At the
 * end, all rows of the spec's cells (finished now or before) go through arquero to
 * `<outDir>/rows.csv` and `<outDir>/rows.json`.
 *
 * Row columns (GRID_COLUMNS first, then any extra metric a dataset kind's scorer adds):
 *   grid, gridVersion, model, dataset (name@version), datasetKind, method, codec ('none' for exact
 *   chunk KV), level (null without codec), requestedRatio (null for methods without one),
 *   ratio, computeFraction (the fusor's, DESIGN.md), items,
 *   logits datasets:   kl, pplDeltaPct, top1 (vs full prefill; means over items)
 *   generate datasets: score (LongBench's metric of the record's dataset), f1, em, agreementF1 (F1 of
 *                      the answer against full prefill's answer), firstTokenKL, top1 (first token)
 *   with a codec:      bitsPerValue (8 x container bytes / chunk K and V values), ratioVsFp16,
 *                      profile (the per-model profile's name, or null), profileBytes (stored once
 *                      per model and level, not in bitsPerValue)
 *   fuseMs, codecDecodeMs (mean wall ms per item on `device`; CPU times, not benchmarks),
 *   device, finishedAt (ISO time), key (the cell key).
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { KVCodec } from '../../cachegen/codec.js';
import type { Model } from '../../model/model.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { ArgumentError, FormatError } from '../../runtime/errors.js';
import { readCodecContextSet } from '../codec-contexts.js';
import type { ProfileVariant } from '../codec-eval.js';
import { PCA_LEVELS } from '../../cachegen/levels.js';
import { cachegenProfiles, pcaProfiles } from '../codec-profiles.js';
import { evaluateCell, ItemCache } from './cell.js';
import { datasetKind, type LoadedDataset } from './datasets.js';
import { cellKey, expandGrid, resolveLevels, type GridCell, type GridSpec } from './spec.js';
import { alignRows, writeTables } from './tables.js';

export const GRID_COLUMNS = ['grid', 'gridVersion', 'model', 'dataset', 'datasetKind', 'method', 'codec', 'level', 'requestedRatio',
  'ratio', 'computeFraction', 'items', 'kl', 'pplDeltaPct', 'top1', 'score', 'f1', 'em', 'agreementF1', 'firstTokenKL',
  'bitsPerValue', 'ratioVsFp16', 'profile', 'profileBytes', 'fuseMs', 'codecDecodeMs', 'device', 'finishedAt', 'key'] as const;

export type GridRow = Record<string, string | number | boolean | null>;

export interface GridProgress {
  cellsDone: number;
  cellsTotal: number;
  skipped: number;
  /** The cell in progress, or the one that just finished (cellFinished; it is counted in cellsDone). */
  cell: GridCell;
  cellFinished: boolean;
  itemsDone: number;
  itemsTotal: number;
}

export interface GridRunOptions {
  outDir: string;
  loadModel: (name: string) => Promise<{ model: Model; tokenizer: Tokenizer | null }>;
  /** Resolves a codec name (never called for 'none'). */
  codec: (name: string) => KVCodec;
  onProgress?: (p: GridProgress) => void;
  /** Checked between cells: when aborted, the run stops after the cell in progress. */
  signal?: AbortSignal;
  /** Compute at most this many cells in this run (then stop, as if interrupted). */
  maxCells?: number;
}

export interface GridRunResult {
  /** Every finished row of the spec's cells, with the same columns (GRID_COLUMNS first, null where absent). */
  rows: GridRow[];
  total: number;
  computed: number;
  skipped: number;
  /** True when the run stopped before every cell was done (signal or maxCells). */
  stopped: boolean;
  droppedPartialLine: boolean;
  files: { jsonl: string; csv: string; json: string };
}

/** Finished cells of a cells.jsonl, by key; a torn final line is truncated away. */
export function readFinishedCells(path: string): { done: Map<string, GridRow>; droppedPartialLine: boolean } {
  const done = new Map<string, GridRow>();
  if (!existsSync(path)) return { done, droppedPartialLine: false };
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  let droppedPartialLine = false;
  let offset = 0;
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const last = i === lines.length - 1;
    if (raw.trim() !== '') {
      let o: { key?: unknown; row?: unknown } | null = null;
      try {
        o = JSON.parse(raw);
      } catch {
        if (last) {  // no newline after it: the write was interrupted
          truncateSync(path, Buffer.byteLength(text.slice(0, offset)));
          droppedPartialLine = true;
          break;
        }
        throw new FormatError(`${path}:${i + 1}: not valid JSON`);
      }
      if (typeof o?.key !== 'string' || typeof o.row !== 'object' || o.row === null)
        throw new FormatError(`${path}:${i + 1}: expected {"key": string, "row": {...}}`);
      done.set(o.key, o.row as GridRow);
    }
    offset += raw.length + 1;
  }
  // A complete last line without its newline: add it, so the next append starts a new line.
  if (!droppedPartialLine && text.length > 0 && !text.endsWith('\n')) appendFileSync(path, '\n');
  return { done, droppedPartialLine };
}

export async function runGrid(spec: GridSpec, o: GridRunOptions): Promise<GridRunResult> {
  mkdirSync(o.outDir, { recursive: true });
  const files = { jsonl: join(o.outDir, 'cells.jsonl'), csv: join(o.outDir, 'rows.csv'), json: join(o.outDir, 'rows.json') };
  const codecs = new Map<string, KVCodec>();
  const codecOf = (name: string) => {
    let c = codecs.get(name);
    if (!c) { c = o.codec(name); codecs.set(name, c); }
    return c;
  };
  // cachegen-pca exists only with a model's basis (built per model below); its levels are fixed.
  const levelsOf = (name: string) => (name === 'cachegen-pca' ? { levels: PCA_LEVELS.map((l) => l.name), defaultLevel: 'default' } : codecOf(name));
  const cells = expandGrid(spec, (c) => { const k = levelsOf(c.codec); return resolveLevels(c, k.levels, k.defaultLevel); });
  const keys = cells.map(cellKey);
  const { done, droppedPartialLine } = readFinishedCells(files.jsonl);
  const skipped = keys.filter((k) => done.has(k)).length;
  let computed = 0;
  let stopped = false;
  let cellsDone = skipped;
  const pending = cells.map((c, i) => ({ c, key: keys[i]! })).filter((x) => !done.has(x.key));
  // Group pending cells by model, then dataset, so each is loaded once.
  const models = [...new Set(pending.map((p) => p.c.model))];
  outer: for (const name of models) {
    if (o.signal?.aborted || (o.maxCells !== undefined && computed >= o.maxCells)) { stopped = true; break; }
    const { model, tokenizer } = await o.loadModel(name);
    try {
      const mine = pending.filter((p) => p.c.model === name);
      const dsKeys = [...new Set(mine.map((p) => JSON.stringify(p.c.dataset)))];
      for (const dk of dsKeys) {
        const spec0 = JSON.parse(dk) as GridCell['dataset'];
        const ds: LoadedDataset = datasetKind(spec0.kind).load(spec0, { model, tokenizer });
        const cache = new ItemCache(model, tokenizer);
        const profiles = new Map<string, ProfileVariant>();
        const pcas = new Map<string, { codec: KVCodec; variants: ProfileVariant[] }>();
        const pcaOf = (c: GridCell) => {
          if (c.profile === null) throw new ArgumentError('grid: cachegen-pca needs a "profile" (a codec context set) to build its basis from');
          let p = pcas.get(c.profile);
          if (!p) {
            const set = readCodecContextSet(c.profile);
            if (!set.profileContexts?.length) throw new ArgumentError(`grid: ${c.profile} has no profileContexts to build a profile from`);
            p = pcaProfiles(model, set.profileContexts, `${set.name}-v${set.version}`);
            pcas.set(c.profile, p);
          }
          return p;
        };
        const profileOf = (c: GridCell): ProfileVariant | null => {
          if (c.profile === null || c.level === null) return null;
          if (c.codec === 'cachegen-pca') return pcaOf(c).variants.find((v) => v.level === c.level)!;
          if (c.codec !== 'cachegen') throw new ArgumentError(`grid: per-model profiles are implemented for cachegen and cachegen-pca, not ${c.codec}`);
          const k = `${c.profile}\u0000${c.level}`;
          let v = profiles.get(k);
          if (!v) {
            const set = readCodecContextSet(c.profile);
            if (!set.profileContexts?.length) throw new ArgumentError(`grid: ${c.profile} has no profileContexts to build a profile from`);
            v = cachegenProfiles(model, set.profileContexts, [c.level], `${set.name}-v${set.version}`)[0]!;
            profiles.set(k, v);
          }
          return v;
        };
        try {
          for (const { c, key } of mine.filter((p) => JSON.stringify(p.c.dataset) === dk)) {
            if (o.signal?.aborted || (o.maxCells !== undefined && computed >= o.maxCells)) { stopped = true; break outer; }
            const report = (itemsDone: number, cellFinished = false) =>
              o.onProgress?.({ cellsDone, cellsTotal: cells.length, skipped, cell: c, cellFinished, itemsDone, itemsTotal: ds.items.length });
            report(0);
            const codec = c.codec === 'none' ? null : c.codec === 'cachegen-pca' ? pcaOf(c).codec : codecOf(c.codec);
            const profile = profileOf(c);
            const m = evaluateCell(cache, ds.items, { method: c.method, ratio: c.ratio, codec, level: c.level, profile }, report);
            const row: GridRow = {
              grid: spec.name, gridVersion: spec.version, model: name, dataset: `${ds.name}@${ds.version}`, datasetKind: c.dataset.kind,
              method: c.method, codec: c.codec, level: c.level, requestedRatio: c.ratio, profile: profile?.name ?? null, ...m, device: model.device.toString(),
              finishedAt: new Date().toISOString(), key,
            };
            appendFileSync(files.jsonl, JSON.stringify({ key, row }) + '\n');
            done.set(key, row);
            computed++;
            cellsDone++;
            report(ds.items.length, true);
            // Cells compute synchronously: yield so a signal handler (the CLI's Ctrl-C) can run between them.
            await new Promise((r) => setImmediate(r));
          }
        } finally {
          cache.dispose();
        }
      }
    } finally {
      model.dispose();
    }
  }
  if (o.signal?.aborted && computed + skipped < cells.length) stopped = true;
  const rows = alignRows(keys.filter((k) => done.has(k)).map((k) => done.get(k)!), GRID_COLUMNS) as GridRow[];
  writeTables(rows, files.csv, files.json);
  return { rows, total: cells.length, computed, skipped, stopped, droppedPartialLine, files };
}
