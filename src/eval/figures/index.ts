/** Vega-lite specs of every reproduced figure, as functions over tidy rows (one module per family). */
export { CONFIG, fmt, isMissing, makeFigure, missingFigure, rowsOr, subtitleOf, wrap,
  type Figure, type FigureFamily, type Missing, type Provenance, type Rows } from './figure.js';
export { fig12QualityVsTtft, fig16QualityVsRatio, fig2QualityVsChunks, fig6AttentionDeviation, fig7DeviationCdf,
  fig8NeighbourSpearman, qaF1VsRatio, topShare, type QaRow, type BlendQualityRow, type ChunkCountRow, type DeviationRow, type QualityAxis,
  type QualityTtftRow, type SpearmanRow } from './cacheblend.js';
export { deltaVsRaw, entropyByGrouping, layerSensitivity, qualityVsSize, qualityVsTtft, ttftRows,
  type CodecRow, type TtftRow, type TtftSetting } from './cachegen.js';
export { sloViolation, type StreamRow } from './streaming.js';
export { benchBlend, benchCodec, benchPrefill, benchProvenance, type BenchPoint } from './benchmarks.js';
