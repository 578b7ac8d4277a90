/**
 * Element types. Ids match native/core/dtype.h. f16 and bf16 travel between JavaScript and native
 * code as raw 16-bit patterns (Uint16Array); `Tensor.toFloat32()` decodes them.
 */
import { DTypeError } from './errors.js';

export type DType = 'f32' | 'f16' | 'bf16' | 'i8' | 'u8' | 'i32';

export const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i8', 'u8', 'i32'];

export const DTYPE_IDS: Readonly<Record<DType, number>> = { f32: 0, f16: 1, bf16: 2, i8: 3, u8: 4, i32: 5 };

export const DTYPE_BYTES: Readonly<Record<DType, number>> = { f32: 4, f16: 2, bf16: 2, i8: 1, u8: 1, i32: 4 };

/** The TypedArray that holds each dtype's elements (raw bits for f16/bf16). */
export interface TypedArrayOf {
  f32: Float32Array;
  f16: Uint16Array;
  bf16: Uint16Array;
  i8: Int8Array;
  u8: Uint8Array;
  i32: Int32Array;
}
export type AnyTypedArray = TypedArrayOf[DType];

const CTORS = {
  f32: Float32Array, f16: Uint16Array, bf16: Uint16Array, i8: Int8Array, u8: Uint8Array, i32: Int32Array,
} as const;

export function isDType(x: unknown): x is DType {
  return typeof x === 'string' && (DTYPES as readonly string[]).includes(x);
}

export function checkDType(x: unknown, what = 'dtype'): DType {
  if (!isDType(x)) throw new DTypeError(`Expected ${what} to be one of ${DTYPES.join(', ')} but received ${JSON.stringify(x)}`);
  return x;
}

export function isFloatDType(t: DType): boolean {
  return t === 'f32' || t === 'f16' || t === 'bf16';
}

/** Views `buffer` as the TypedArray of `dtype` (no copy). */
export function typedView<T extends DType>(dtype: T, buffer: ArrayBuffer, offset = 0, length?: number): TypedArrayOf[T] {
  const Ctor = CTORS[dtype] as unknown as new (b: ArrayBuffer, o: number, l?: number) => TypedArrayOf[T];
  return new Ctor(buffer, offset, length);
}

/** The dtype a TypedArray holds without conversion, or undefined for Float64Array and the like. */
export function dtypeOfArray(a: ArrayBufferView): DType | undefined {
  if (a instanceof Float32Array) return 'f32';
  if (a instanceof Int8Array) return 'i8';
  if (a instanceof Uint8Array) return 'u8';
  if (a instanceof Int32Array) return 'i32';
  return undefined;
}
