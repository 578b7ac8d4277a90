/** Model shapes used by benchmarks and tests (random-initialised; no weights needed). */
import type { ModelConfig } from './config.js';

/** Mistral-7B-v0.1's shape: 32 layers, GQA 32/8 heads of 128, FFN 14336, vocab 32000. */
export const MISTRAL_7B: ModelConfig = {
  architecture: 'mistral', dim: 4096, hiddenDim: 14336, nLayers: 32, nHeads: 32, nKvHeads: 8, headDim: 128,
  vocabSize: 32000, maxSeqLen: 32768, normEps: 1e-5, ropeTheta: 1e6, ropeScaling: null, tiedEmbeddings: false,
  qkvBias: false, bosId: 1, eosId: 2,
};

export const PRESETS: Record<string, ModelConfig> = { 'mistral-7b': MISTRAL_7B };

/**
 * Parameters outside the embedding table, the classifier included, as the transformers baseline
 * counts them (../shared/bench/hf_prefill_baseline.py): its FLOP floor is
 * 2 * nonEmbeddingParams * T + 2 * layers * T^2 * dim (causal QK^T and PV).
 */
export function nonEmbeddingParams(c: ModelConfig): number {
  const attn = c.dim * c.nHeads * c.headDim * 2 + c.dim * c.nKvHeads * c.headDim * 2;
  const bias = c.qkvBias ? (c.nHeads + 2 * c.nKvHeads) * c.headDim : 0;
  const mlp = 3 * c.dim * c.hiddenDim;
  const head = c.tiedEmbeddings ? 0 : c.vocabSize * c.dim;
  return c.nLayers * (attn + bias + mlp + 2 * c.dim) + c.dim + head;
}

export function prefillFlops(c: ModelConfig, tokens: number): number {
  return 2 * nonEmbeddingParams(c) * tokens + 2 * c.nLayers * tokens * tokens * c.nHeads * c.headDim;
}
