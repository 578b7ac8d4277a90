/** The codec registry: every KVCodec by its stable name. */
import { NotFoundError } from '../runtime/errors.js';
import type { KVCodec } from './codec.js';
import { CachegenCodec, makeCodecs } from './codecs.js';
import { CACHEGEN_LEVELS, type CachegenLevel } from './levels.js';

/** An unknown codec name. */
export class UnknownCodecError extends NotFoundError {}

let all: readonly KVCodec[] | undefined;

/** Every codec, kvlab's CacheGen first. */
export function codecs(): readonly KVCodec[] {
  all ??= Object.freeze(makeCodecs());
  return all;
}

export function codecNames(): string[] {
  return codecs().map((c) => c.name);
}

export function getCodec(name: string): KVCodec {
  const c = codecs().find((x) => x.name === name);
  if (!c) throw new UnknownCodecError(`unknown codec ${JSON.stringify(name)}; known: ${codecNames().join(', ')}`);
  return c;
}

/** The codec that encodes at `level`: the registry's cachegen for one of its levels, else a codec of that level alone (a calibrated one). */
export function cachegenCodecFor(level: CachegenLevel): KVCodec {
  return CACHEGEN_LEVELS.includes(level) ? getCodec('cachegen') : new CachegenCodec([level], level.name);
}
