/**
 * CacheGen: KV-cache codecs. `getCodec('cachegen').encode(span, { level })` turns a chunk's KV into
 * a self-describing container (FORMAT.md); `decode(bytes, { device })` turns it back.
 */
export type { DecodeOptions, DecodedSpan, EncodeOptions, KVCodec, KVSpan } from './codec.js';
export { inspectContainer, type CachegenDecodeOptions, type CachegenEncodeOptions } from './codecs.js';
export { CACHEGEN_DEFAULT_LEVEL, CACHEGEN_LEVELS, PCA_LEVELS, cachegenLevel, cachegenPlaneLevels, layerThird, releasedBins,
  type CachegenLevel } from './levels.js';
export { CODEC_IDS, type CodecName, type ContainerInfo } from './native.js';
export { PcaBasis, pcaCodec, pcaProfile, type PcaCodec } from './pca.js';
export { CodecProfile } from './profile.js';
export { codecNames, codecs, getCodec, UnknownCodecError } from './registry.js';
export { containerStats, type ContainerStats } from './stats.js';
export { calibrateLevel, scaledLevel, K_SCALES, V_SCALES, type Calibration, type CalibrationPoint, type CalibrationSpan, type CalibrateOptions } from './calibrate.js';
export { codecBench, type CodecBenchJson, type CodecBenchOptions, type CodecBenchRow } from './bench.js';
