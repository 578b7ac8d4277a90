/** Timing for benchmarks and profiles: device-synchronised wall time, median of repeated runs. */
import { Device, type DeviceSpec } from './device.js';
import { synchronize } from './stream.js';

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/**
 * Runs `fn` `warmup` times, then `reps` times with the device synchronised before and after each
 * run, and returns the median wall time in milliseconds.
 */
export function medianTimeMs(fn: () => void, device: DeviceSpec, reps: number, warmup: number): number {
  const d = Device.parse(device);
  for (let i = 0; i < warmup; i++) fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    synchronize(d);
    const t0 = performance.now();
    fn();
    synchronize(d);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}

/** medianTimeMs for work that completes asynchronously (awaited before the clock stops). */
export async function medianTimeMsAsync(fn: () => Promise<void>, device: DeviceSpec, reps: number, warmup: number): Promise<number> {
  const d = Device.parse(device);
  for (let i = 0; i < warmup; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < reps; i++) {
    synchronize(d);
    const t0 = performance.now();
    await fn();
    synchronize(d);
    ts.push(performance.now() - t0);
  }
  return median(ts);
}
