/** Live and peak bytes per device, counted by the addon at every allocation and free. */
import { addon } from './addon.js';

export interface MemoryStats {
  liveBytes: number;
  peakBytes: number;
  liveAllocations: number;
  totalAllocations: number;
}

/** Keyed by device: 'cpu', then 'cuda:N' for each device that has allocated. */
export function memoryStats(): Record<string, MemoryStats> {
  const out: Record<string, MemoryStats> = {};
  for (const c of addon().memoryStats()) {
    const { device, ...rest } = c;
    out[device < 0 ? 'cpu' : `cuda:${device}`] = rest;
  }
  return out;
}

/** Threads the CPU backend uses (0 = one per core). Returns the new count. */
export function setCpuThreads(n: number): number {
  return addon().setCpuThreads(n);
}

export function cpuThreads(): number {
  return addon().cpuThreads().pool;
}
