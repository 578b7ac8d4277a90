/** The benchmark JSON every `kvlab bench ...` writes (DESIGN.md: Definitions), for the CLI and library benches alike. */
import { cpus } from 'node:os';
import { cudaStatus } from './device.js';
import type { Device } from './device.js';
import { VERSION } from '../version.js';

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

/** `argv`: the kvlab command line after `kvlab` (recorded as the command). */
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
