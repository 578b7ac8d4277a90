/**
 * Per-model CacheGen profiles for the codec evaluation: one CodecProfile (the probability tables
 * of src/cachegen/profile.ts) per level, built from the KV of sample contexts that are not the
 * evaluated ones (datasets/stories260k-codec `profileContexts`), as ProfileVariants for codecEval; and
 * the same for `cachegen-pca` (a PCA basis plus its coefficient tables).
 */
import { PcaBasis, pcaCodec, pcaProfile, type PcaCodec } from '../cachegen/pca.js';
import { CodecProfile } from '../cachegen/profile.js';
import { ropeInvFreq } from '../model/rope.js';
import { modelFingerprint } from '../model/fingerprint.js';
import type { Model } from '../model/model.js';
import { ArgumentError } from '../runtime/errors.js';
import type { ProfileVariant } from './codec-eval.js';
import { contextSpan } from './kv-continuation.js';

export function cachegenProfiles(model: Model, sample: readonly { id: string; context: number[] }[], levels: readonly string[], source = 'profileContexts'): ProfileVariant[] {
  if (sample.length === 0) throw new ArgumentError('cachegenProfiles needs at least one sample context');
  const fp = modelFingerprint(model.config);
  const spans = sample.map((c) => ({ ...contextSpan(model, c.context), fingerprint: fp }));
  try {
    return levels.map((level) => {
      const profile = CodecProfile.build(spans, { level });
      return { codec: 'cachegen', level, name: `cachegen-${level}@${source}:${profile.hash}`, fingerprint: fp, bytes: profile.byteLength,
        builtFromTokens: profile.tokens, encodeOptions: { profile }, decodeOptions: { profile } };
    });
  } finally {
    for (const s of spans) s.kv.dispose();
  }
}

/**
 * `cachegen-pca` for the codec evaluation: its PCA basis and, per level, the probability tables of
 * the coefficients, all built from the sample contexts; each variant's size counts the basis too.
 */
export function pcaProfiles(model: Model, sample: readonly { id: string; context: number[] }[], source = 'profileContexts'): { codec: PcaCodec; variants: ProfileVariant[] } {
  if (sample.length === 0) throw new ArgumentError('pcaProfiles needs at least one sample context');
  const fp = modelFingerprint(model.config);
  const spans = sample.map((c) => ({ ...contextSpan(model, c.context), fingerprint: fp }));
  try {
    const basis = PcaBasis.build(spans, ropeInvFreq(model.config));
    const codec = pcaCodec(basis);
    const coefficients = spans.map((s) => codec.coefficientSpan(s));
    try {
      const variants = codec.levels.map((level) => {
        const profile = pcaProfile(coefficients, level);
        return { codec: codec.name, level, name: `cachegen-pca-${level}@${source}:${basis.hash}/${profile.hash}`, fingerprint: fp,
          bytes: profile.byteLength + basis.byteLength, builtFromTokens: profile.tokens, encodeOptions: { profile }, decodeOptions: { profile } };
      });
      return { codec, variants };
    } finally {
      for (const c of coefficients) c.kv.dispose();
    }
  } finally {
    for (const s of spans) s.kv.dispose();
  }
}
