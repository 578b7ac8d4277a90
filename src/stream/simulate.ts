/**
 * The simulated network: one link, chunks sent back to back, each taking bytes * 8 / bandwidth
 * (trace.ts); the receiver's GPU decodes chunk i (or recomputes its text) while chunk i+1 is on the
 * wire. TTFT is when the last chunk's KV is ready. The throughput measured on chunk i (its bytes over
 * its transfer time) is the estimate for chunk i+1 (KV chunks only; text chunks keep the estimate).
 */
import { EXACT_QUALITY, type QualityMetric } from './levels.js';
import { checkSetup, choose, type Choice, type StreamPolicy, type StreamSetup } from './policy.js';
import { transferSeconds, type BandwidthTrace } from './trace.js';

export interface StreamRun {
  readonly ttftS: number;
  readonly violated: boolean;
  readonly choices: readonly Choice[];
  /** Mean over chunks of the chosen level's quality (text counts as exact KV). */
  readonly quality: number;
  /** When each chunk finished arriving (s). */
  readonly arrivedS: readonly number[];
}

/** Per-chunk timing the simulator and the loopback transport both feed into the same bookkeeping. */
export class StreamTimeline {
  readonly choices: Choice[] = [];
  readonly arrivedS: number[] = [];
  nowS = 0;
  gpuFreeS = 0;
  estBps: number;

  constructor(readonly setup: StreamSetup) {
    this.estBps = setup.initialGbps * 1e9;
  }

  bytesFor(c: Choice): number {
    return c === 'text' ? this.setup.textBytesPerChunk : this.setup.levels[c]!.bytesPerChunk;
  }

  /** Records chunk `i` sent as `c`, arriving `transferS` after `nowS`. */
  record(c: Choice, transferS: number): void {
    const bytes = this.bytesFor(c);
    const end = this.nowS + transferS;
    // Only KV chunks update the estimate: a text chunk is a few KB, whose time on a real link is
    // latency, not bandwidth (on loopback it would read as a link 1000x slower than it is).
    if (c !== 'text' && transferS > 0 && bytes > 0) this.estBps = (bytes * 8) / transferS;
    const work = c === 'text' ? this.setup.recomputeS : this.setup.decodeS[c]!;
    this.gpuFreeS = Math.max(end, this.gpuFreeS) + work;
    this.choices.push(c);
    this.arrivedS.push(end);
    this.nowS = end;
  }

  result(metric: QualityMetric): StreamRun {
    const q = this.choices.map((c) => (c === 'text' ? EXACT_QUALITY[metric] : this.setup.levels[c]!.quality));
    const ttftS = this.gpuFreeS;
    return { ttftS, violated: ttftS > this.setup.sloS, choices: [...this.choices], quality: q.reduce((a, b) => a + b, 0) / q.length, arrivedS: [...this.arrivedS] };
  }
}

export function simulateStream(setup: StreamSetup, trace: BandwidthTrace, policy: StreamPolicy, metric: QualityMetric = 'top1'): StreamRun {
  checkSetup(setup);
  const tl = new StreamTimeline(setup);
  for (let i = 0; i < setup.chunks; i++) {
    const c = choose(setup, policy, { chunk: i, nowS: tl.nowS, gpuFreeS: tl.gpuFreeS, estBps: tl.estBps });
    tl.record(c, transferSeconds(trace, i, tl.nowS, tl.bytesFor(c)));
  }
  return tl.result(metric);
}
