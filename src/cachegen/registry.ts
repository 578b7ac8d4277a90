/** The codec registry: every KVCodec by its stable name. */
import { NotFoundError } from '../runtime/errors.js';
import type { KVCodec } from './codec.js';
import { makeCodecs } from './codecs.js';

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
