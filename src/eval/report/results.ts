/**
 * Reads the benchmark JSON committed under results/ (DESIGN.md "Benchmark JSON", measured on GPU
 * hosts) into flat BenchPoints for the report. A file that is not benchmark JSON is listed with the
 * reason, never dropped silently. Also understood: the transformers baseline JSONL written beside
 * the prefill benchmark ({"what": "hf transformers sdpa prefill", "tokens", "ms", "floor_ms", "card"}).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchPoint } from '../figures/benchmarks.js';

export interface ResultFile {
  path: string;
  bench: string;
  card: string;
  date: string;
  command: string;
  rows: number;
  /** Why the file contributed nothing, if it did not. */
  problem?: string;
}

export interface Results {
  points: BenchPoint[];
  files: ResultFile[];
}

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

function caseLabel(c: Record<string, unknown>): string {
  return Object.entries(c).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** Benchmark JSON text -> points; throws a message naming what is wrong. */
export function benchPoints(text: string, source: string): { points: BenchPoint[]; file: ResultFile } {
  const j: unknown = JSON.parse(text);
  if (!isObj(j) || typeof j.bench !== 'string' || !Array.isArray(j.rows))
    throw new Error('not benchmark JSON (needs "bench" and "rows")');
  const card = String(j.card ?? 'unknown'), date = String(j.date ?? '');
  const points: BenchPoint[] = [];
  j.rows.forEach((r: unknown, i: number) => {
    if (!isObj(r) || typeof r.value !== 'number' || typeof r.metric !== 'string' || !isObj(r.case))
      throw new Error(`row ${i}: needs case (object), metric (string) and value (number)`);
    points.push({
      source, bench: j.bench as string, card, date, metric: r.metric, unit: String(r.unit ?? ''), value: r.value,
      floor: typeof r.floor === 'number' ? r.floor : null,
      baseline: typeof r.baseline === 'string' ? r.baseline : null,
      ratioToBaseline: typeof r.ratioToBaseline === 'number' ? r.ratioToBaseline : null,
      label: caseLabel(r.case), case: r.case,
    });
  });
  return { points, file: { path: source, bench: j.bench, card, date, command: String(j.command ?? ''), rows: points.length } };
}

/** The transformers baseline JSONL -> prefill points (other lines are counted, not plotted). */
export function baselinePoints(text: string, source: string): { points: BenchPoint[]; file: ResultFile } {
  const points: BenchPoint[] = [];
  let card = 'unknown';
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch (e) {
      throw new Error(`line ${i + 1}: ${(e as Error).message}`);
    }
    if (!isObj(o)) throw new Error(`line ${i + 1}: not an object`);
    card = String(o.card ?? card);
    if (String(o.what).includes('prefill') && typeof o.tokens === 'number' && typeof o.ms === 'number') {
      const c = { tokens: o.tokens };
      points.push({ source, bench: 'transformers (sdpa)', card, date: '', metric: 'prefill', unit: 'ms', value: o.ms,
        floor: typeof o.floor_ms === 'number' ? o.floor_ms : null, baseline: null, ratioToBaseline: null, label: caseLabel(c), case: c });
    }
  });
  return { points, file: { path: source, bench: 'transformers baseline', card, date: '', command: '', rows: points.length } };
}

/** Every *.json / *.jsonl in `dir` (a missing folder gives no files). `prefix` names them in sources. */
export function readResults(dir: string, prefix = 'results'): Results {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /\.jsonl?$/.test(n)).sort();
  } catch {
    return { points: [], files: [] };
  }
  const out: Results = { points: [], files: [] };
  for (const n of names) {
    const source = `${prefix}/${n}`;
    try {
      const text = readFileSync(join(dir, n), 'utf8');
      const { points, file } = n.endsWith('.jsonl') ? baselinePoints(text, source) : benchPoints(text, source);
      out.points.push(...points);
      out.files.push(file);
    } catch (e) {
      out.files.push({ path: source, bench: '', card: '', date: '', command: '', rows: 0, problem: (e as Error).message });
    }
  }
  // Baseline lines carry no date: take it from a benchmark file measured on the same card.
  for (const p of out.points) if (!p.date) p.date = out.points.find((q) => q.card === p.card && q.date)?.date ?? '';
  return out;
}
