/**
 * kvlab's typed errors. Every failure a user can cause (bad arguments, wrong dtype or shape, a
 * disposed tensor, out of memory, a missing GPU, a corrupt file) is a `KvlabError` with a stable
 * `code`; native errors arrive with the same codes and are turned into these classes by
 * `fromNative`, keeping the JavaScript stack of the call that failed.
 *
 * @example
 *   try { t.to('cuda:0') } catch (e) { if (e instanceof DeviceError) fallBackToCpu() }
 */

export type KvlabErrorCode =
  | 'KVLAB_ARG'
  | 'KVLAB_DTYPE'
  | 'KVLAB_SHAPE'
  | 'KVLAB_DISPOSED'
  | 'KVLAB_OOM'
  | 'KVLAB_DEVICE'
  | 'KVLAB_CUDA'
  | 'KVLAB_ADDON'
  | 'KVLAB_FORMAT'
  | 'KVLAB_NOT_FOUND'
  | 'KVLAB_INTERNAL';

export class KvlabError extends Error {
  readonly code: KvlabErrorCode;
  constructor(code: KvlabErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A malformed argument: wrong type, out of range, unknown option. */
export class ArgumentError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_ARG', message, options); }
}
/** An unsupported dtype, or two dtypes that must agree and do not. */
export class DTypeError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_DTYPE', message, options); }
}
/** A shape, size or byte-range mismatch. */
export class ShapeError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_SHAPE', message, options); }
}
/** Use of a tensor or stream after dispose(). */
export class DisposedError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_DISPOSED', message, options); }
}
/** A host or device allocation failed. */
export class OutOfMemoryError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_OOM', message, options); }
}
/** The requested device is not available (no CUDA backend, no driver, no such GPU). */
export class DeviceError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_DEVICE', message, options); }
}
/** A CUDA runtime, kernel or cuBLAS call failed. */
export class CudaError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_CUDA', message, options); }
}
/** The native addon could not be loaded; the message lists what was tried and how to fix it. */
export class AddonLoadError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_ADDON', message, options); }
}
/** A file or bitstream is malformed: bad magic, truncated, wrong header, checksum mismatch. */
export class FormatError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_FORMAT', message, options); }
}
/** A named thing (model, dataset, key) was looked for and not found. */
export class NotFoundError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_NOT_FOUND', message, options); }
}
/** A broken invariant inside kvlab: a bug to report. */
export class InternalError extends KvlabError {
  constructor(message: string, options?: { cause?: unknown }) { super('KVLAB_INTERNAL', message, options); }
}

const BY_CODE: Record<string, new (message: string, options?: { cause?: unknown }) => KvlabError> = {
  KVLAB_ARG: ArgumentError,
  KVLAB_DTYPE: DTypeError,
  KVLAB_SHAPE: ShapeError,
  KVLAB_DISPOSED: DisposedError,
  KVLAB_OOM: OutOfMemoryError,
  KVLAB_DEVICE: DeviceError,
  KVLAB_CUDA: CudaError,
  KVLAB_ADDON: AddonLoadError,
  KVLAB_FORMAT: FormatError,
  KVLAB_NOT_FOUND: NotFoundError,
  KVLAB_INTERNAL: InternalError,
};

/** Turns an error thrown by the addon into its typed class; anything else passes through. */
export function fromNative(err: unknown): unknown {
  if (err instanceof KvlabError || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const Cls = typeof code === 'string' ? BY_CODE[code] : undefined;
  if (!Cls) return err;
  const typed = new Cls(err.message);
  typed.stack = `${typed.name}: ${err.message}\n${(err.stack ?? '').split('\n').slice(1).join('\n')}`;
  return typed;
}

/** Calls `fn`, rethrowing native errors as typed ones. */
export function native<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    throw fromNative(e);
  }
}

/** Awaits a native promise, rejecting with a typed error. */
export async function nativeAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw fromNative(e);
  }
}
