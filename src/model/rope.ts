/**
 * RoPE inverse frequencies for a config, with the scaling variants folded in, so one rotation
 * kernel serves plain, linear and Llama-3 scaled RoPE (and re-positioning by a position difference).
 *   plain:  inv_freq[i] = 1 / theta^(2i / d)
 *   linear: inv_freq[i] / factor   (positions divided by factor)
 *   llama3: wavelengths 2 pi / inv_freq above original / lowFreqFactor are divided by factor, those
 *           below original / highFreqFactor kept, and the band between interpolated smoothly.
 * Values are computed in float64 and rounded once to f32.
 */
import type { ModelConfig } from './config.js';

export function ropeInvFreq(config: Pick<ModelConfig, 'headDim' | 'ropeTheta' | 'ropeScaling'>): Float32Array {
  const half = config.headDim / 2;
  const out = new Float32Array(half);
  const s = config.ropeScaling;
  for (let i = 0; i < half; i++) {
    let f = 1 / config.ropeTheta ** ((2 * i) / config.headDim);
    if (s?.type === 'linear') f /= s.factor;
    else if (s?.type === 'llama3') {
      const wavelen = (2 * Math.PI) / f;
      const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
      const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
      if (wavelen > lowWavelen) f /= s.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f = (1 - smooth) * (f / s.factor) + smooth * f;
      }
    }
    out[i] = f;
  }
  return out;
}
