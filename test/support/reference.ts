/**
 * Independent JavaScript references for tests: half and bfloat16 rounding computed in float64
 * arithmetic (a different route from native/core/half.h's bit manipulation), seeded random inputs.
 */

import { seededUniform as rng } from '../../src/model/generate.js';

/** Round half to even. */
export function rhe(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function exponent(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return e;
}

/** IEEE binary16 bits of the f32 value x, round to nearest even. */
export function f16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7fff;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | rhe(a * 2 ** 24);  // may round up to 0x400, the smallest normal
  let e = exponent(a);
  let m = rhe(a / 2 ** (e - 10));
  if (m === 2048) { e++; m = 1024; }
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** bfloat16 bits of the f32 value x (normal range), round to nearest even. */
export function bf16Bits(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === 0) return sign;
  let e = exponent(a);
  let m = rhe(a / 2 ** (e - 7));
  if (m === 256) { e++; m = 128; }
  return sign | ((e + 127) << 7) | (m - 128);
}

export function f16ToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function bf16ToNumber(h: number): number {
  const b = new DataView(new ArrayBuffer(4));
  b.setUint32(0, h << 16);
  return b.getFloat32(0);
}

/** The seeded PRNG kvlab samples with (mulberry32), so failures reproduce. */
export { rng };

/** DESIGN.md's relative error: max |out - ref| / max |ref| (Infinity if out has a non-finite value). */
export function relErr(out: ArrayLike<number>, ref: ArrayLike<number>): number {
  let d = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    if (!Number.isFinite(out[i]!)) return Infinity;
    d = Math.max(d, Math.abs(out[i]! - ref[i]!));
    m = Math.max(m, Math.abs(ref[i]!));
  }
  return m === 0 ? d : d / m;
}

/** Random non-zero f32 values spread over many magnitudes, with exact rounding ties mixed in. */
export function randomFloats(n: number, seed: number): Float32Array {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const kind = r();
    let v: number;
    if (kind < 0.1) v = (Math.floor(r() * 600) - 300) + 0.5;           // integer ties for int casts
    else if (kind < 0.2) v = (1 + (2 * Math.floor(r() * 512) + 1) / 2048) * 2 ** Math.floor(r() * 10); // f16 ties
    else if (kind < 0.25) v = (r() * 2 ** -14) * (r() < 0.5 ? -1 : 1);     // f16 subnormals
    else if (kind < 0.3) v = 60000 + r() * 10000;                          // f16 overflow edge
    else v = (r() - 0.5) * 2 ** (Math.floor(r() * 24) - 8);
    out[i] = v === 0 ? 1 : v;
  }
  return out;
}
