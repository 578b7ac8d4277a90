/**
 * kvlab's evaluation harness: metrics (LongBench's F1/EM/Rouge-L, perplexity, KL, top-1, TTFT and
 * size summaries), datasets (LongBench JSONL, the stories260K codec contexts), the codec evaluation,
 * CacheGen's observations and resumable experiment grids. Exported as `evaluation` from 'kvlab'.
 */
export { sizeSummary, summarize, ttftSummary, quantileSorted, type SizeSummary, type Summary } from './aggregate.js';
export { checkCodecContextSet, readCodecContextSet, type CodecContext, type CodecContextSet } from './codec-contexts.js';
export { codecEval, type CodecEvalOptions, type CodecEvalResult, type CodecEvalRow, type CodecProfileRow, type ProfileVariant } from './codec-eval.js';
export { cachegenProfiles } from './codec-profiles.js';
export { evaluateCell, ItemCache, type CellMetrics, type CellRequest } from './grid/cell.js';
export { datasetKind, datasetKinds, registerDatasetKind, type DatasetKind, type DatasetLoadContext, type GridItem,
  type LoadedDataset } from './grid/datasets.js';
export { GRID_COLUMNS, readFinishedCells, runGrid, type GridProgress, type GridRow, type GridRunOptions, type GridRunResult } from './grid/runner.js';
export { cellKey, checkGridSpec, expandGrid, readGridSpec, resolveLevels, type GridCell, type GridCodecSpec, type GridDatasetSpec,
  type GridSpec } from './grid/spec.js';
export { alignRows, rowsTable, writeTables } from './grid/tables.js';
export { continuationLogits, contextSpan, relativeError, type ContextSpan } from './kv-continuation.js';
export { bm25Scores, LongBenchFormatError, parseLongBench, readLongBench, retrieveContext, splitPassages, tokenChunks, topKPassages,
  type LongBenchRecord, type RetrievalOptions, type RetrievedContext } from './longbench.js';
export { classificationScore, countScore, exactMatch, LONGBENCH_METRIC, longbenchScore, normalizeAnswer, pySplit, qaF1, retrievalScore,
  tokenF1, type LongBenchMetric } from './metrics.js';
export { cachegenObservations, layerThird, type DeltaVarianceRow, type DistributionRow, type EntropyRow, type ObservationOptions,
  type Observations, type SensitivityRow } from './observations.js';
export { argmaxRow, continuationQuality, meanKL, meanNll, nll, perplexity, top1Agreement, type ContinuationQuality } from './quality.js';
export { rougeL, rougeLScores, type RougeLScores } from './rouge.js';
