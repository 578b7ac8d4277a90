/** The benchmark JSON every `kvlab bench ...` writes (DESIGN.md: Definitions). */
import { cpus } from 'node:os';
import { cudaStatus } from '../runtime/device.js';
import type { Device } from '../runtime/device.js';
import { VERSION } from '../version.js';

export { median } from '../runtime/timing.js';

export interface BenchRow {
  case: Record<string, unknown>;
  metric: string;
  value: number;
  unit: string;
  baseline: string | null;
  ratioToBaseline: number | null;
  floor: number | null;
}

export interface BenchJson {
  bench: string;
  card: string;
  command: string;
  date: string;
  versions: Record<string, string>;
  rows: BenchRow[];
}

export function cardName(device: Device): string {
  if (device.isCuda) return cudaStatus().devices[device.index]?.name ?? device.toString();
  return `${cpus()[0]?.model ?? 'CPU'} (${cpus().length} threads)`;
}

export function benchJson(bench: string, device: Device, argv: string[], rows: BenchRow[]): BenchJson {
  const versions: Record<string, string> = { kvlab: VERSION, node: process.version };
  if (device.isCuda) {
    const s = cudaStatus();
    versions.cudaRuntime = String(s.runtimeVersion);
    versions.cudaDriver = String(s.driverVersion);
    versions.cublas = String(s.cublasVersion);
  }
  return { bench, card: cardName(device), command: ['kvlab', ...argv].join(' '), date: new Date().toISOString(), versions, rows };
}


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
