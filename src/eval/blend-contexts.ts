/**
 * The CacheBlend context sets kvlab ships (datasets/stories260k-blend/v1.json): token ids of a shared
 * prefix and of contexts made of chunks plus a continuation, read with a typed error for anything else.
 */
import { readFileSync } from 'node:fs';
import type { BlendContext } from '../cacheblend/eval.js';
import { FormatError } from '../runtime/errors.js';

export interface BlendContextSet {
  name: string;
  version: number;
  prefix: number[];
  contexts: BlendContext[];
}

export function readBlendContextSet(path: string): BlendContextSet {
  let d: unknown;
  try {
    d = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`${path}: ${(e as Error).message}`);
  }
  const x = d as Partial<BlendContextSet>;
  const ids = (a: unknown) => Array.isArray(a) && a.every((t) => Number.isInteger(t));
  if (!ids(x.prefix) || !Array.isArray(x.contexts) || x.contexts.length === 0)
    throw new FormatError(`${path}: expected {prefix: number[], contexts: [...]}`);
  x.contexts.forEach((c, i) => {
    if (!Array.isArray(c?.chunks) || !c.chunks.every(ids) || !ids(c.continuation) || c.continuation.length < 2)
      throw new FormatError(`${path}: context ${i} needs chunks: number[][] and a continuation of >= 2 tokens`);
  });
  return x as BlendContextSet;
}
