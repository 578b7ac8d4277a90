/** Text helpers that reproduce Python's string semantics where LongBench's reference relies on them. */

/** Python's str.split() whitespace (str.isspace), which differs from JavaScript's \s. */
const PY_SPACE = /[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/u;

/** Python's `s.split()`: split on runs of whitespace, no empty pieces. */
export function pySplit(s: string): string[] {
  return s.split(PY_SPACE).filter((w) => w.length > 0);
}
