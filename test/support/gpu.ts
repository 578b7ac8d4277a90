/**
 * GPU test helpers: `gpuSuite` skips every test cleanly when CUDA is unusable (and says why once),
 * `poison` fills a tensor with a recognisable byte pattern so a kernel that forgets to write shows.
 */
import { suite } from 'uvu';
import { Tensor, cudaStatus } from '../../src/index.js';

let reason: string | null | undefined;
export function gpuSkipReason(): string | null {
  if (reason === undefined) {
    try {
      const s = cudaStatus();
      reason = s.available ? null : s.reason;
    } catch (e) {
      reason = (e as Error).message;
    }
  }
  return reason;
}

/** A uvu suite whose tests are skipped (counted as skipped) when no GPU is usable. */
export function gpuSuite(name: string) {
  const s = suite(name);
  const why = gpuSkipReason();
  if (why === null) return s;
  process.stdout.write(`  [${name}] skipped: ${why.split(';')[0]}\n`);
  const skipping = ((_n: string, _fn: unknown) => s.skip()) as unknown as typeof s;
  Object.assign(skipping, s, { run: s.run });
  return skipping;
}

/** Overwrites every byte of `t` with 0xA5 (a NaN-like pattern for floats, odd for integers). */
export function poison(t: Tensor): void {
  const p = Tensor.fromBytes(new Uint8Array(t.byteLength).fill(0xa5), t.shape, { dtype: t.dtype, device: t.device });
  try {
    t.copyFrom(p);
  } finally {
    p.dispose();
  }
}
