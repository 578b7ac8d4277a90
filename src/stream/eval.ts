/**
 * The adaptation experiment (CacheGen's artifact): many bandwidth traces, each policy streamed
 * through each trace; per policy the SLO violation rate, the mean quality and the median TTFT.
 * `loopbackCheck` replays traces over real loopback TCP and compares median TTFT with the simulator.
 */
import type { QualityMetric } from './levels.js';
import { loopbackStream, type LoopbackOptions } from './loopback.js';
import { policyName, type StreamPolicy, type StreamSetup } from './policy.js';
import { simulateStream, type StreamRun } from './simulate.js';
import type { BandwidthTrace } from './trace.js';

/** The usual median: the middle value, or the mean of the two middle values of an even count. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export interface StreamEvalRow {
  policy: string;
  sloViolationRate: number;
  meanQuality: number;
  medianTtftS: number;
  meanTtftS: number;
  /** Share of chunks sent as text (recomputed). */
  textShare: number;
  traces: number;
  qualityMetric: QualityMetric;
}

/** Adaptive, each fixed level, and text only. */
export function allPolicies(setup: StreamSetup): StreamPolicy[] {
  return [{ kind: 'adaptive' }, ...setup.levels.map((_, level) => ({ kind: 'fixed' as const, level })), { kind: 'text' }];
}

export function summarise(setup: StreamSetup, policy: StreamPolicy, runs: readonly StreamRun[], metric: QualityMetric): StreamEvalRow {
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return {
    policy: policyName(policy, setup.levels),
    sloViolationRate: runs.filter((r) => r.violated).length / runs.length,
    meanQuality: mean(runs.map((r) => r.quality)),
    medianTtftS: median(runs.map((r) => r.ttftS)),
    meanTtftS: mean(runs.map((r) => r.ttftS)),
    textShare: mean(runs.map((r) => r.choices.filter((c) => c === 'text').length / r.choices.length)),
    traces: runs.length,
    qualityMetric: metric,
  };
}

export function streamEval(setup: StreamSetup, traces: readonly BandwidthTrace[], options: { policies?: StreamPolicy[]; metric?: QualityMetric } = {}): StreamEvalRow[] {
  const metric = options.metric ?? 'top1';
  return (options.policies ?? allPolicies(setup)).map((p) => summarise(setup, p, traces.map((t) => simulateStream(setup, t, p, metric)), metric));
}

export interface LoopbackCheckRow {
  policy: string;
  traces: number;
  simMedianTtftS: number;
  loopbackMedianTtftS: number;
  /** |loopback - sim| / loopback of the median TTFT. */
  relDiff: number;
  /** Median over traces of the per-trace |loopback - sim| / loopback. */
  medianPerTraceRelDiff: number;
  sameChoicesShare: number;
}

export async function loopbackCheck(setup: StreamSetup, traces: readonly BandwidthTrace[], policies: StreamPolicy[],
  options: LoopbackOptions & { onProgress?: (done: number, total: number) => void } = {}): Promise<LoopbackCheckRow[]> {
  const rows: LoopbackCheckRow[] = [];
  let done = 0;
  for (const p of policies) {
    const sim: StreamRun[] = [], real: StreamRun[] = [];
    for (const t of traces) {
      sim.push(simulateStream(setup, t, p));
      real.push(await loopbackStream(setup, t, p, 'top1', options));
      options.onProgress?.(++done, policies.length * traces.length);
    }
    const s = median(sim.map((r) => r.ttftS)), l = median(real.map((r) => r.ttftS));
    rows.push({
      policy: policyName(p, setup.levels), traces: traces.length, simMedianTtftS: s, loopbackMedianTtftS: l, relDiff: Math.abs(l - s) / l,
      medianPerTraceRelDiff: median(sim.map((r, i) => Math.abs(real[i]!.ttftS - r.ttftS) / real[i]!.ttftS)),
      sameChoicesShare: sim.filter((r, i) => r.choices.join() === real[i]!.choices.join()).length / sim.length,
    });
  }
  return rows;
}
