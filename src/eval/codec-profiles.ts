/**
 * Per-model CacheGen profiles for the codec evaluation: one CodecProfile (the probability tables
 * of src/cachegen/profile.ts) per level, built from the KV of sample contexts that are not the
 * evaluated ones (datasets/stories260k-codec `profileContexts`), as ProfileVariants for codecEval.
 */
import { CodecProfile } from '../cachegen/profile.js';
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
