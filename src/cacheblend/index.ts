export { checkChunk, makeChunk, type ChunkKV } from './chunk.js';
export { modelFingerprint } from '../model/fingerprint.js';
export { buildReusedCache, fuse, fusedLayout, trueDeviation, type FuseRequest, type FuseResult, type FusedLayout } from './fusor.js';
export { attentionDeviation, meanKL, neighbourSpearman, reuseDeviation, spearman, type ReuseDeviation } from './instrument.js';
export { POLICY_NAMES, checkRatio, gradualSchedule, makePolicy, topK, type DeviationKind, type PolicyContext,
  type PolicyName, type PolicyOptions, type SelectionPlan, type SelectionPolicy } from './policies.js';
export { queryAttentionMass } from './query-attention.js';
export { precomputeChunk, precomputeChunks } from './precompute.js';
export { repositionChunk, rotateSpanK } from './reposition.js';
export { blendEval, DEFAULT_RATIOS, FIXED_METHODS, RATIO_METHODS, type BlendContext, type BlendEvalRow, type BlendEvalOptions } from './eval.js';
export { hostLayerSource, memoryLayerSource, type LayerSource } from './layer-source.js';
export { DEFAULT_PREFETCH } from './prefetch.js';
export { fusePipelined, type PipelinedFuseRequest, type PipelinedFuseResult, type StreamedChunk } from './pipeline.js';
export {
  chooseRatio, chooseTier, fitRecomputeProfile, hidingRatio, loadSeconds, profileRecompute, recomputeSeconds,
  type RecomputeProfile, type StorageTier,
} from './controller.js';
