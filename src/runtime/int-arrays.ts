/**
 * Index arrays built with plain loops: `Int32Array.from(x, fn)` and spreads cost ~20x more per
 * element, which a CacheBlend request pays on every N-token list it builds (N in the thousands).
 */

/** start, start + 1, ..., start + n - 1. */
export function iota(n: number, start = 0): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = start + i;
  return out;
}

/** The concatenation of `parts`, each element plus its part's offset (0 where omitted). */
export function concatOffset(parts: readonly (readonly [ArrayLike<number>, number?])[]): Int32Array {
  let n = 0;
  for (const [p] of parts) n += p.length;
  const out = new Int32Array(n);
  let o = 0;
  for (const [p, d = 0] of parts) for (let i = 0; i < p.length; i++) out[o++] = p[i]! + d;
  return out;
}
