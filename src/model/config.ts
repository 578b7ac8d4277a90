/**
 * The architecture-level description of a Llama-family model, independent of the file it came
 * from. Every loader produces one and runs `validateConfig` on it before touching the weights.
 */

import { ModelConfigError } from './errors.js';

/** RoPE frequency scaling. `linear`: positions divided by `factor`. `llama3`: Llama 3.1's
 * wavelength-dependent scaling (frequencies with wavelength above
 * originalMaxPositionEmbeddings / lowFreqFactor divided by `factor`, below
 * originalMaxPositionEmbeddings / highFreqFactor kept, smooth in between). */
export type RopeScaling =
  | null
  | { type: 'linear'; factor: number }
  | {
      type: 'llama3';
      factor: number;
      lowFreqFactor: number;
      highFreqFactor: number;
      originalMaxPositionEmbeddings: number;
    };

export type Architecture = 'llama' | 'mistral' | 'qwen2';

export interface ModelConfig {
  architecture: Architecture;
  /** Residual stream width. */
  dim: number;
  /** FFN inner width (rows of w1 and w3). */
  hiddenDim: number;
  nLayers: number;
  /** Query heads. */
  nHeads: number;
  /** Key/value heads (GQA when below nHeads; nHeads must be a multiple of it). */
  nKvHeads: number;
  /** Per-head width; even, since RoPE rotates pairs. Usually dim / nHeads. */
  headDim: number;
  vocabSize: number;
  /** Context length the source file declares. */
  maxSeqLen: number;
  /** RMSNorm epsilon. */
  normEps: number;
  /** RoPE base. */
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** The classifier is the token embedding (no `output` tensor). */
  tiedEmbeddings: boolean;
  /** Q, K and V projections carry biases (`bq`, `bk`, `bv`), as in Qwen2. */
  qkvBias: boolean;
  bosId: number;
  eosId: number;
}

const ARCHITECTURES: readonly string[] = ['llama', 'mistral', 'qwen2'];

/**
 * Check every field of `config`; throws `ModelConfigError` naming the first bad field.
 * Returns the same object so it can wrap a literal.
 */
export function validateConfig(config: ModelConfig): ModelConfig {
  const c = config as unknown as Record<string, unknown>;
  if (typeof c !== 'object' || c === null) throw new ModelConfigError('(root)', 'expected an object');
  if (typeof c.architecture !== 'string' || !ARCHITECTURES.includes(c.architecture)) {
    throw new ModelConfigError('architecture', `expected one of ${ARCHITECTURES.join(', ')} but received ${show(c.architecture)}`);
  }
  for (const f of ['dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'vocabSize', 'maxSeqLen'] as const) {
    positiveInt(c, f);
  }
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new ModelConfigError('nKvHeads', `nHeads (${config.nHeads}) must be a multiple of nKvHeads (${config.nKvHeads})`);
  }
  if (config.headDim % 2 !== 0) {
    throw new ModelConfigError('headDim', `must be even (RoPE rotates pairs) but is ${config.headDim}`);
  }
  positiveFinite(c, 'normEps');
  positiveFinite(c, 'ropeTheta');
  validateRopeScaling(c.ropeScaling);
  for (const f of ['tiedEmbeddings', 'qkvBias'] as const) {
    if (typeof c[f] !== 'boolean') throw new ModelConfigError(f, `expected a boolean but received ${show(c[f])}`);
  }
  for (const f of ['bosId', 'eosId'] as const) {
    const v = c[f];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v >= config.vocabSize) {
      throw new ModelConfigError(f, `expected an integer token id in [0, ${config.vocabSize}) but received ${show(v)}`);
    }
  }
  return config;
}

function validateRopeScaling(s: unknown): void {
  if (s === null) return;
  if (typeof s !== 'object') {
    throw new ModelConfigError('ropeScaling', `expected null or an object but received ${show(s)}`);
  }
  const r = s as Record<string, unknown>;
  if (r.type === 'linear') {
    positiveFinite(r, 'factor', 'ropeScaling.');
    return;
  }
  if (r.type === 'llama3') {
    for (const f of ['factor', 'lowFreqFactor', 'highFreqFactor'] as const) positiveFinite(r, f, 'ropeScaling.');
    if ((r.highFreqFactor as number) <= (r.lowFreqFactor as number)) {
      throw new ModelConfigError('ropeScaling.highFreqFactor', `must exceed lowFreqFactor (${show(r.lowFreqFactor)}) but is ${show(r.highFreqFactor)}`);
    }
    positiveInt(r, 'originalMaxPositionEmbeddings', 'ropeScaling.');
    return;
  }
  throw new ModelConfigError('ropeScaling.type', `expected 'linear' or 'llama3' but received ${show(r.type)}`);
}

function positiveInt(o: Record<string, unknown>, f: string, prefix = ''): void {
  const v = o[f];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new ModelConfigError(prefix + f, `expected a positive integer but received ${show(v)}`);
  }
}

function positiveFinite(o: Record<string, unknown>, f: string, prefix = ''): void {
  const v = o[f];
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw new ModelConfigError(prefix + f, `expected a positive finite number but received ${show(v)}`);
  }
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number') return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === undefined) return 'undefined';
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}
