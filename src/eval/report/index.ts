/** Rendering (vega-lite -> SVG -> PNG), the HTML report, results/ reading and `kvlab reproduce`'s pieces. */
export { DEFAULT_FONT_DIRS, FONT_FAMILY, FontNotFoundError, findFonts, type FontSet } from './fonts.js';
export { compileSpec, SpecError, specToSvg, svgToPng, useFontMetrics } from './render.js';
export { readFontMetrics, textWidth, type FontMetrics } from './text-metrics.js';
export { escapeHtml, reportHtml, tableHtml, writeReport, type RenderedFigure, type ReportMeta, type ReportTable, type RunLogEntry } from './html.js';
export { baselinePoints, benchPoints, readResults, type ResultFile, type Results } from './results.js';
export { blendFigureData, type BlendDataOptions, type BlendFigureData } from './blend-data.js';
export { streamExperiment, type StreamExperiment } from './stream-data.js';
export { qaFigureData, type QaDataOptions, type QaFigureData } from './qa-data.js';
export { buildFigures, buildTables, MISTRAL7B_FP16_BYTES_PER_TOKEN, produce, ttftSettingFrom, type Produced, type ReproduceData } from './reproduce.js';
