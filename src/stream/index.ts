/** CacheGen's adaptive streamer: bandwidth traces, per-chunk level choice, text fallback, a simulated network and a loopback TCP transport. */
export { constantTrace, parseTrace, rateAt, stepTrace, transferSeconds, uniformTraces, type BandwidthTrace, type TimedSegment } from './trace.js';
export { betterQuality, EXACT_QUALITY, fp16KvBytes, levelsFromCodecEval, type QualityMetric, type StreamLevel } from './levels.js';
export { checkSetup, choose, policyName, type Choice, type ChoiceState, type StreamPolicy, type StreamSetup } from './policy.js';
export { simulateStream, StreamTimeline, type StreamRun } from './simulate.js';
export { TokenBucket } from './token-bucket.js';
export { loopbackStream, type LoopbackOptions } from './loopback.js';
export { allPolicies, loopbackCheck, streamEval, summarise, type LoopbackCheckRow, type StreamEvalRow } from './eval.js';
