/**
 * The codec benchmark (`kvlab codec bench`, = `kvlab bench codec`): encode and decode throughput of
 * kvlab's CacheGen in GB/s of fp16 KV, on KV that a model computes from token ids (on a GPU host the
 * random-initialised Mistral-7B-shaped model: 32 layers, 8 KV heads of 128), for each chunk length.
 *
 * CUDA: device times by CUDA events, median of `reps` runs after a warm-up: encode = KV on the GPU
 * to compacted streams, steps and tables on the GPU (the container's header is then assembled on the
 * host from a few small copies, not timed); decode = container on the GPU to f16 KV on the GPU,
 * including the payload checksum and the clean-stream checks. Each row's floor is the GB/s at which
 * moving the bytes the step must move (fp16 KV once plus the container once) takes exactly the
 * card's peak memory bandwidth; `fractionOfFloor` is value / floor. Before timing, the CUDA
 * container is compared byte for byte with the host encoder's (for chunks up to `parityMaxTokens`).
 * CPU: wall time of encode() and decode() on host KV.
 *
 * With `quality` (continuation tokens), the longest chunk also goes through each cachegen level and
 * the baselines LMCache and KIVI stand for (cachegen-released: LMCache's quantisation; kivi2 g32;
 * int4-channel), and the model runs a continuation on each decoded KV: mean KL and top-1 agreement
 * against exact KV (DESIGN.md), beside bits per value and relative RMSE, so sizes compare at a
 * quality the model sees, not only at an error of the values.
 */
import type { Model } from '../model/model.js';
import { cudaStatus } from '../runtime/device.js';
import { DTYPE_IDS } from '../runtime/dtype.js';
import { ArgumentError, InternalError, native } from '../runtime/errors.js';
import { median } from '../runtime/timing.js';
import { benchJson, type BenchJson, type BenchRow } from '../runtime/bench-json.js';
import * as ops from '../runtime/ops.js';
import { Tensor } from '../runtime/tensor.js';
import { modelFingerprint } from '../model/fingerprint.js';
import { continuationLogits } from '../eval/kv-continuation.js';
import { continuationQuality } from '../eval/quality.js';
import { calibrateLevel, codecKL } from './calibrate.js';
import type { KVCodec } from './codec.js';
import { cachegenLevel, cachegenPlaneLevels, CACHEGEN_DEFAULT_LEVEL, type CachegenLevel } from './levels.js';
import { codecAddon } from './native.js';
import { writeFileSync } from 'node:fs';
import { cachegenCodecFor, getCodec } from './registry.js';
import { containerStats } from './stats.js';

/** Rows and JSON of DESIGN.md's benchmark format (src/runtime/bench-json.ts). */
export type CodecBenchRow = BenchRow;
export type CodecBenchJson = BenchJson;

export interface CodecBenchOptions {
  /** Chunk lengths in tokens (each a prefix of one prefilled sequence). */
  tokens: readonly number[];
  reps?: number;
  /** A cachegen level, or several separated by commas (default: the default level). */
  level?: string;
  /** Compare the CUDA container with the host encoder's for chunks up to this many tokens. */
  parityMaxTokens?: number;
  /** The kvlab command line recorded in the JSON (after `kvlab`). */
  argv?: string[];
  onProgress?: (message: string) => void;
  /**
   * Writes the longest chunk's KV here as raw little-endian fp16 [layers][K|V][tokens][kv heads][head
   * dim] (the design's layout), so another implementation (LMCache's kernels) can be timed on the
   * same bytes.
   */
  saveKv?: string;
  /** Continuation tokens of the quality rows (0 or absent: none); see the module comment. */
  quality?: number;
  /**
   * Also calibrate the default level for this model (calibrate.ts) on a span of other token ids,
   * to a KL budget: a number (nats), or 'released' for the KL cachegen-released (LMCache's
   * quantisation) costs on that span. The calibrated level joins the speed and quality rows as
   * `default-calibrated`. Needs `quality`.
   */
  calibrate?: number | 'released';
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Relative RMSE of K and of V (sqrt(sum (decoded - x)^2 / sum x^2) over all K, resp. V, values):
 * the error measure LMCache's driver reports, so sizes can be compared at equal error.
 */
function relativeRmse(kv: Tensor, decoded: Tensor): [string, number][] {
  if (!kv.device.isCuda && kv.dtype !== 'f32') {
    // the CPU ops compute in f32 only
    const [k32, d32] = [kv.cast('f32'), decoded.cast('f32')];
    try {
      return relativeRmse(k32, d32);
    } finally {
      k32.dispose();
      d32.dispose();
    }
  }
  const planes = kv.shape[0]! * 2, width = kv.numel / planes;
  const a = kv.reshape([planes, width]), b = decoded.reshape([planes, width]);
  // sum x^2 of a plane = its squared distance to one zero row, which every plane is compared with
  const zero = Tensor.empty([1, width], { dtype: kv.dtype, device: kv.device });
  const toZero = Tensor.fromTypedArray(new Int32Array(planes), undefined, { device: kv.device });
  const err = Tensor.empty([planes], { dtype: 'f32', device: kv.device });
  const ref = Tensor.empty([planes], { dtype: 'f32', device: kv.device });
  try {
    ops.fillUniform(zero, 0, 0, 0);
    ops.rowSqDiff(b, a, err);
    ops.rowSqDiff(a, zero, ref, false, undefined, toZero);
    const e = err.toTypedArray() as Float32Array, r = ref.toTypedArray() as Float32Array;
    const sum = (x: Float32Array, kv01: number) => x.reduce((acc, v, i) => (i % 2 === kv01 ? acc + v : acc), 0);
    return [['relRmseK', Math.sqrt(sum(e, 0) / sum(r, 0))], ['relRmseV', Math.sqrt(sum(e, 1) / sum(r, 1))]];
  } finally {
    for (const t of [a, b, zero, toZero, err, ref]) t.dispose();
  }
}

function rmseRows(caseOf: Record<string, unknown>, kv: Tensor, decoded: Tensor): CodecBenchRow[] {
  return relativeRmse(kv, decoded).map(([metric, value]) => ({ case: caseOf, metric, value, unit: 'ratio', baseline: null, ratioToBaseline: null, floor: null }));
}

function writeKvFile(path: string, kv: Tensor): void {
  const host = kv.to('cpu');
  try {
    const a = host.toTypedArray() as Uint16Array;
    writeFileSync(path, new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
  } finally {
    host.dispose();
  }
}

/** Runs the benchmark on `model`'s device; returns the benchmark JSON (DESIGN.md). */
export function codecBench(model: Model, o: CodecBenchOptions): CodecBenchJson {
  const reps = o.reps ?? 10;
  if (!Number.isInteger(reps) || reps < 1) throw new ArgumentError(`reps must be a positive integer, got ${reps}`);
  const lengths = [...o.tokens];
  if (lengths.length === 0 || lengths.some((t) => !Number.isInteger(t) || t < 1 || t > model.config.maxSeqLen))
    throw new ArgumentError(`chunk lengths must be integers in 1..${model.config.maxSeqLen}`);
  const levels = (o.level ?? CACHEGEN_DEFAULT_LEVEL).split(',').map((l) => cachegenLevel(l.trim()));
  const device = model.device;
  const c = model.config;
  const fp = modelFingerprint(c);
  const maxT = Math.max(...lengths);
  const quality = o.quality ?? 0;
  if (!Number.isInteger(quality) || quality < 0 || quality === 1 || maxT + quality > c.maxSeqLen)
    throw new ArgumentError(`quality: continuation tokens must be 0 or an integer >= 2 with ${maxT} + them within the model's ${c.maxSeqLen}`);
  const ids = Array.from({ length: maxT + quality }, (_, i) => (Math.imul(i + 1, 2654435761) >>> 0) % c.vocabSize);
  const rows: CodecBenchRow[] = [];
  if (o.calibrate !== undefined) {
    if (quality === 0) throw new ArgumentError('calibrate needs quality rows (a continuation length)');
    const cal = calibrationRows(model, maxT, quality, o.calibrate, o.onProgress);
    rows.push(...cal.rows);
    levels.push(cal.level);
  }
  o.onProgress?.(`prefill ${maxT} tokens on ${device}`);
  const { cache } = model.prefill(ids.slice(0, maxT), { logits: 'none', capacity: maxT });
  const peak = device.isCuda ? cudaStatus().devices[device.index]?.peakBandwidthGBs ?? null : null;
  try {
    // Each chunk is exported once and encoded at every level.
    for (const T of lengths) {
      const span0 = cache.exportSpan(0, T);
      const kv = span0.kv.dtype === 'f16' ? span0.kv : span0.kv.cast('f16');
      if (kv !== span0.kv) span0.kv.dispose();
      const span = { kv, positions: span0.positions, fingerprint: fp };
      const kvBytes = kv.byteLength;
      try {
        if (o.saveKv && T === maxT) writeKvFile(o.saveKv, kv);
        for (const level of levels) {
          const codec = cachegenCodecFor(level);
          const caseOf = { codec: 'cachegen', level: level.name, tokens: T, layers: c.nLayers, kvHeads: c.nKvHeads, headDim: c.headDim };
          let encMs: number, decMs: number, container: Uint8Array;
          if (device.isCuda) {
            const out = Tensor.empty(kv.shape, { dtype: 'f16', device });
            try {
              const opts = { group: level.group, level: codec.levels.indexOf(level.name), ...cachegenPlaneLevels(level, c.nLayers) };
              o.onProgress?.(`cuda encode/decode ${T} tokens x ${reps}`);
              const r = native(() => codecAddon().codecBenchCuda!(kv.nativeHandle, DTYPE_IDS.f16, [c.nLayers, T, c.nKvHeads, c.headDim],
                span.positions, fp, opts, out.nativeHandle, DTYPE_IDS.f16, reps));
              encMs = median(r.encodeMs);
              decMs = median(r.decodeMs);
              container = r.container;
              rows.push(...rmseRows(caseOf, kv, out));
              if (T <= (o.parityMaxTokens ?? 1024)) {
                o.onProgress?.(`host encode ${T} tokens for the parity check`);
                const hostKv = kv.to('cpu');
                let host: Uint8Array;
                try {
                  host = codec.encode({ ...span, kv: hostKv }, { level: level.name });
                } finally {
                  hostKv.dispose();
                }
                const same = bytesEqual(host, container);
                rows.push({ case: caseOf, metric: 'cpuCudaByteIdentical', value: same ? 1 : 0, unit: 'bool', baseline: null, ratioToBaseline: null, floor: null });
                if (!same) throw new InternalError(`CUDA and host cachegen containers differ at ${T} tokens`);
              }
            } finally {
              out.dispose();
            }
          } else {
            const enc: number[] = [], dec: number[] = [];
            container = codec.encode(span, { level: level.name });
            let decoded: Tensor | null = null;
            try {
              for (let i = 0; i < reps; i++) {
                let t0 = performance.now();
                container = codec.encode(span, { level: level.name });
                enc.push(performance.now() - t0);
                decoded?.dispose();
                t0 = performance.now();
                decoded = codec.decode(container).kv;
                dec.push(performance.now() - t0);
              }
              rows.push(...rmseRows(caseOf, kv, decoded!));
            } finally {
              decoded?.dispose();
            }
            encMs = median(enc);
            decMs = median(dec);
          }
          const st = containerStats(container);
          const gbs = (ms: number) => kvBytes / (ms * 1e6);
          const floor = peak ? (kvBytes / ((kvBytes + container.length) / (peak * 1e9))) / 1e9 : null;
          for (const [metric, ms] of [['encode', encMs], ['decode', decMs]] as const) {
            const v = gbs(ms);
            rows.push({ case: { ...caseOf, ms, fractionOfFloor: floor ? v / floor : null }, metric, value: v, unit: 'GB/s of fp16 KV',
              baseline: null, ratioToBaseline: null, floor });
          }
          rows.push({ case: { ...caseOf, bytes: container.length, sideBytes: st.sideBytes }, metric: 'bitsPerValue', value: st.bitsPerValue,
            unit: 'bits', baseline: 'fp16', ratioToBaseline: st.ratioVsFp16, floor: null });
        }
      } finally {
        kv.dispose();
      }
    }
    if (quality > 0) rows.push(...qualityRows(model, cache.exportSpan(0, maxT), ids.slice(maxT), levels, o.onProgress));
  } finally {
    cache.dispose();
  }
  return benchJson('codec', device, o.argv ?? ['codec', 'bench'], rows);
}

/**
 * Calibrates the default level (calibrate.ts) on a span of other token ids than the bench's, to
 * `budget` or to what cachegen-released costs on that span; rows for every candidate tried.
 */
function calibrationRows(model: Model, T: number, quality: number, budget: number | 'released', onProgress?: (message: string) => void):
  { level: CachegenLevel; rows: CodecBenchRow[] } {
  const c = model.config;
  const ids = Array.from({ length: T + quality }, (_, i) => (Math.imul(i + 7919, 2246822519) >>> 0) % c.vocabSize);
  onProgress?.(`calibration: prefill ${T} other tokens`);
  const { cache } = model.prefill(ids.slice(0, T), { logits: 'none', capacity: T });
  const exported = cache.exportSpan(0, T);
  cache.dispose();
  const kv = exported.kv.dtype === 'f16' ? exported.kv : exported.kv.cast('f16');
  if (kv !== exported.kv) exported.kv.dispose();
  const span = { kv, positions: exported.positions, continuation: ids.slice(T) };
  const rows: CodecBenchRow[] = [];
  try {
    let kl = typeof budget === 'number' ? budget : NaN;
    if (budget === 'released') {
      const reference = continuationLogits(model, kv, span.positions, span.continuation);
      kl = codecKL(model, { ...span, reference }, getCodec('cachegen-released'), 'default').kl;
    }
    const cal = calibrateLevel(model, [span], { base: cachegenLevel(CACHEGEN_DEFAULT_LEVEL), budget: kl, onProgress });
    const caseOf = { part: 'calibration', budget: String(budget), budgetKL: kl, tokens: T, continuation: quality };
    for (const p of cal.tried) {
      rows.push({ case: { ...caseOf, kScale: p.kScale, vScale: p.vScale }, metric: 'calibrationKL', value: p.kl, unit: 'nats', baseline: null, ratioToBaseline: null, floor: null });
      rows.push({ case: { ...caseOf, kScale: p.kScale, vScale: p.vScale }, metric: 'calibrationBitsPerValue', value: p.bitsPerValue, unit: 'bits', baseline: null, ratioToBaseline: null, floor: null });
    }
    rows.push({ case: { ...caseOf, level: cal.level.name, kScale: cal.point.kScale, vScale: cal.point.vScale }, metric: 'calibratedBitsPerValue',
      value: cal.point.bitsPerValue, unit: 'bits', baseline: null, ratioToBaseline: null, floor: null });
    return { level: cal.level, rows };
  } finally {
    kv.dispose();
  }
}

/** The quality rows (module comment) of one span; disposes the span's KV. */
function qualityRows(model: Model, exact: { kv: Tensor; positions: Int32Array }, continuation: number[], levels: readonly CachegenLevel[],
  onProgress?: (message: string) => void): CodecBenchRow[] {
  const c = model.config, T = exact.positions.length;
  const rows: CodecBenchRow[] = [];
  const f16 = exact.kv.dtype === 'f16' ? exact.kv : exact.kv.cast('f16');
  const span = { kv: f16, positions: exact.positions, fingerprint: modelFingerprint(c) };
  const runs: [KVCodec, string][] = [
    ...levels.map((l) => [cachegenCodecFor(l), l.name] as [KVCodec, string]),
    [getCodec('cachegen-released'), 'default'], [getCodec('kivi2'), 'g32'], [getCodec('int4-channel'), 'default']];
  try {
    onProgress?.(`exact continuation of ${continuation.length} tokens after ${T}`);
    const reference = continuationLogits(model, exact.kv, exact.positions, continuation);
    for (const [codec, level] of runs) {
      const name = codec.name;
      onProgress?.(`quality: ${name} ${level}`);
      const bytes = codec.encode(span, { level });
      const decoded = codec.decode(bytes, { device: model.device, dtype: model.dtype }).kv;
      try {
        const q = continuationQuality(reference, continuationLogits(model, decoded, exact.positions, continuation), c.vocabSize, continuation.slice(1));
        const caseOf = { part: 'quality', codec: name, level, tokens: T, continuation: continuation.length, layers: c.nLayers, kvHeads: c.nKvHeads, headDim: c.headDim };
        const st = containerStats(bytes);
        rows.push({ case: { ...caseOf, bytes: bytes.length }, metric: 'bitsPerValue', value: st.bitsPerValue, unit: 'bits', baseline: 'fp16',
          ratioToBaseline: st.ratioVsFp16, floor: null });
        rows.push(...rmseRows(caseOf, exact.kv, decoded));
        for (const [metric, value, unit] of [['continuationKL', q.kl, 'nats'], ['continuationTop1', q.top1, 'ratio'], ['continuationPplDeltaPct', q.pplDeltaPct, '%']] as const)
          rows.push({ case: caseOf, metric, value, unit, baseline: null, ratioToBaseline: null, floor: null });
      } finally {
        decoded.dispose();
      }
    }
  } finally {
    if (f16 !== exact.kv) f16.dispose();
    exact.kv.dispose();
  }
  return rows;
}
