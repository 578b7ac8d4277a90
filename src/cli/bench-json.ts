/** Benchmark JSON (src/runtime/bench-json.ts) and its terminal table. */
import type { BenchRow } from '../runtime/bench-json.js';

export { benchJson, cardName, type BenchJson, type BenchRow } from '../runtime/bench-json.js';
export { median } from '../runtime/timing.js';

/** A short fixed-width table of rows for the terminal. */
export function benchTable(rows: BenchRow[]): string {
  const lines = rows.map((r) => [
    Object.entries(r.case).map(([k, v]) => `${k}=${v}`).join(' '),
    r.metric, `${r.value.toPrecision(4)} ${r.unit}`,
    r.floor !== null ? `floor ${r.floor.toPrecision(4)}` : '',
    r.ratioToBaseline !== null ? `x${r.ratioToBaseline.toFixed(2)} vs ${r.baseline}` : '',
  ]);
  const w = [0, 1, 2, 3].map((i) => Math.max(...lines.map((l) => l[i]!.length)));
  return lines.map((l) => l.map((c, i) => (i < 4 ? c.padEnd(w[i]!) : c)).join('  ')).join('\n');
}
