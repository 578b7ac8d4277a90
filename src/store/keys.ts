/**
 * Chunk keys: a content hash (SHA-256) over a chunk's token ids, the model fingerprint and the codec
 * and level its KV is stored in, so a key can only ever name KV that is valid for that model and
 * that encoding. Two modes (DESIGN.md "store"):
 *
 * - 'prefix': each chunk's key also folds in the previous chunk's key, so chunk i's key names the
 *   whole prefix up to and including chunk i (prefix reuse: KV depends on every earlier token).
 * - 'position-free': each chunk is keyed on its own tokens (CacheBlend reuses a chunk anywhere and
 *   re-positions its K).
 *
 * @example
 *   const keys = chunkKeys(tokens, { fingerprint: modelFingerprint(cfg), codec: 'raw', level: 'f16' });
 *   keys[0].key  // 64 hex digits; keys[i].start/end: the token range
 */
import { createHash } from 'node:crypto';
import { ArgumentError } from '../runtime/errors.js';

export type KeyMode = 'prefix' | 'position-free';

export interface KeyOptions {
  /** modelFingerprint() of the model whose KV is stored. */
  fingerprint: string;
  /** Codec name ('raw' for uncompressed KV). */
  codec: string;
  /** Codec level (for raw KV, its dtype, e.g. 'f16'). */
  level: string;
  /** 'prefix' (default) or 'position-free'. */
  mode?: KeyMode;
  /** Tokens per chunk (256 by default); the last chunk may be shorter. */
  chunkSize?: number;
}

export interface ChunkKey {
  /** 64 lowercase hex digits. */
  readonly key: string;
  /** Token range [start, end) of the chunk in the input. */
  readonly start: number;
  readonly end: number;
}

export const DEFAULT_CHUNK_SIZE = 256;
// Versioned domain tag: a future change of the key recipe must not collide with today's keys.
const DOMAIN = 'kvlab-chunk-key-v1';

/** Keys of every chunk of `tokens` (the last chunk keeps its remainder; no tokens -> no keys). */
export function chunkKeys(tokens: ArrayLike<number>, options: KeyOptions): ChunkKey[] {
  const size = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  const mode = options.mode ?? 'prefix';
  if (!Number.isSafeInteger(size) || size < 1) throw new ArgumentError(`Expected chunkSize to be an integer >= 1 but received ${size}`);
  if (mode !== 'prefix' && mode !== 'position-free')
    throw new ArgumentError(`Expected mode 'prefix' or 'position-free' but received ${JSON.stringify(mode)}`);
  for (const [name, v] of [['fingerprint', options.fingerprint], ['codec', options.codec], ['level', options.level]] as const)
    if (typeof v !== 'string' || v.length === 0) throw new ArgumentError(`Expected ${name} to be a non-empty string but received ${JSON.stringify(v)}`);
  const ids = toInt32(tokens);
  const out: ChunkKey[] = [];
  let prev = '';
  for (let start = 0; start < ids.length; start += size) {
    const end = Math.min(ids.length, start + size);
    const key = chunkKey(ids.subarray(start, end), options, mode === 'prefix' ? prev : '');
    out.push({ key, start, end });
    prev = key;
  }
  return out;
}

/** One chunk's key; `previous` is the previous chunk's key in prefix mode ('' for the first chunk). */
export function chunkKey(tokens: Int32Array, options: KeyOptions, previous = ''): string {
  const h = createHash('sha256');
  // Length-prefixed fields, so no two different field tuples serialise to the same bytes.
  for (const field of [DOMAIN, options.mode ?? 'prefix', options.fingerprint, options.codec, options.level, previous]) {
    const b = Buffer.from(field, 'utf8');
    h.update(u32(b.length)).update(b);
  }
  h.update(u32(tokens.length));
  h.update(new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength));
  return h.digest('hex');
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n, true);
  return b;
}

function toInt32(tokens: ArrayLike<number>): Int32Array {
  const a = tokens instanceof Int32Array ? tokens : Int32Array.from(tokens as ArrayLike<number>);
  for (let i = 0; i < a.length; i++) {
    const t = (tokens as ArrayLike<number>)[i]!;
    if (!Number.isInteger(t) || t < 0 || t > 0x7fffffff) throw new ArgumentError(`Expected token ids to be integers in [0, 2^31) but token ${i} is ${t}`);
  }
  return a;
}
