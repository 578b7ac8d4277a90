/**
 * Tensor: a dense, row-major block of one dtype on one device. Storage lives in native memory
 * (host, pinned host or CUDA device), freed by `dispose()` or, if forgotten, by a finalizer when the
 * tensor is garbage-collected. Live bytes are counted per device (`memoryStats()`).
 *
 * @example
 *   const t = Tensor.fromTypedArray(new Float32Array([1, 2, 3, 4]), [2, 2]);
 *   const h = t.to('cuda:0').cast('bf16');   // on the GPU
 *   h.toFloat32();                           // Float32Array [1, 2, 3, 4]
 *   t.dispose(); h.dispose();
 */
import { addon, type StorageHandle } from './addon.js';
import { Device, checkDevice, type DeviceSpec } from './device.js';
import {
  DTYPE_BYTES, DTYPE_IDS, checkDType, dtypeOfArray, typedView,
  type AnyTypedArray, type DType, type TypedArrayOf,
} from './dtype.js';
import { ArgumentError, DTypeError, DeviceError, DisposedError, ShapeError, native, nativeAsync } from './errors.js';
import { Fence, type Stream } from './stream.js';

export type Shape = readonly number[];

export interface TensorOptions {
  dtype?: DType;
  device?: DeviceSpec;
  /** Page-locked host memory (CPU tensors only; needs CUDA): faster and truly async copies. */
  pinned?: boolean;
}

/** Validates a shape and returns its element count. */
export function shapeNumel(shape: Shape, what = 'shape'): number {
  if (!Array.isArray(shape)) throw new ShapeError(`Expected ${what} to be an array of integers but received ${typeof shape}`);
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ShapeError(`Expected ${what} entries to be integers >= 0 but received [${shape.join(', ')}]`);
    n *= d;
  }
  if (!Number.isSafeInteger(n * 8)) throw new ShapeError(`${what} [${shape.join(', ')}] has too many elements`);
  return n;
}

export class Tensor {
  readonly shape: Shape;
  readonly numel: number;
  readonly byteLength: number;
  private handle: StorageHandle | null;

  private constructor(
    readonly dtype: DType,
    shape: Shape,
    readonly device: Device,
    readonly pinned: boolean,
    handle: StorageHandle,
  ) {
    this.shape = Object.freeze([...shape]);
    this.numel = shapeNumel(shape);
    this.byteLength = this.numel * DTYPE_BYTES[dtype];
    this.handle = handle;
  }

  /** An uninitialised tensor (contents are whatever the allocator returned). */
  static empty(shape: Shape, options: TensorOptions = {}): Tensor {
    const dtype = checkDType(options.dtype ?? 'f32');
    const device = Device.parse(options.device ?? 'cpu');
    const pinned = options.pinned ?? false;
    if (pinned && device.isCuda) throw new ArgumentError('pinned applies to CPU tensors only');
    const bytes = shapeNumel(shape) * DTYPE_BYTES[dtype];
    if (device.isCuda || pinned) checkDevice(device.isCuda ? device : Device.cuda(0));
    const h = native(() => addon().alloc(device.nativeIndex, bytes, pinned));
    return new Tensor(dtype, shape, device, pinned, h);
  }

  /**
   * Copies `data` into a new tensor. The dtype defaults to the array's own (Float32Array -> f32,
   * Int32Array -> i32, Int8Array -> i8, Uint8Array -> u8). A Uint16Array is read as raw f16 or bf16
   * bits and needs `dtype`. A Float32Array with another float or integer dtype is converted with
   * the same rounding as `cast`. `shape` defaults to [data.length].
   */
  static fromTypedArray(data: AnyTypedArray, shape?: Shape, options: TensorOptions = {}): Tensor {
    if (!ArrayBuffer.isView(data)) throw new ArgumentError('Expected a TypedArray for data but received ' + typeof data);
    const s = shape ?? [data.length];
    const n = shapeNumel(s);
    if (n !== data.length) throw new ShapeError(`data has ${data.length} elements but shape [${s.join(', ')}] needs ${n}`);
    const own = dtypeOfArray(data);
    const dtype = options.dtype === undefined ? own : checkDType(options.dtype);
    if (dtype === undefined) throw new DTypeError(`${data.constructor.name} needs an explicit dtype ('f16' or 'bf16' for raw 16-bit values)`);
    const device = Device.parse(options.device ?? 'cpu');
    if (data instanceof Uint16Array && dtype !== 'f16' && dtype !== 'bf16')
      throw new DTypeError(`a Uint16Array holds raw f16/bf16 bits; dtype ${dtype} does not match`);
    if (own !== undefined && own !== dtype) {
      if (own !== 'f32') throw new DTypeError(`cannot load ${data.constructor.name} as ${dtype}; pass a Float32Array to convert`);
      const tmp = Tensor.fromTypedArray(data, s);
      try {
        const converted = tmp.cast(dtype);
        if (device.isCuda || options.pinned) {
          try { return converted.to(device, { pinned: options.pinned }); } finally { converted.dispose(); }
        }
        return converted;
      } finally {
        tmp.dispose();
      }
    }
    const t = Tensor.empty(s, { dtype, device, pinned: options.pinned });
    try {
      native(() => addon().upload(t.nativeHandle, 0, data));
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** A tensor whose elements are the raw little-endian `bytes` read as `dtype`. */
  static fromBytes(bytes: Uint8Array, shape: Shape, options: TensorOptions = {}): Tensor {
    const dtype = checkDType(options.dtype ?? 'u8');
    const need = shapeNumel(shape) * DTYPE_BYTES[dtype];
    if (bytes.byteLength !== need)
      throw new ShapeError(`${bytes.byteLength} bytes given but ${dtype}[${shape.join(', ')}] needs ${need}`);
    const t = Tensor.empty(shape, options);
    try {
      native(() => addon().upload(t.nativeHandle, 0, bytes));
    } catch (e) {
      t.dispose();
      throw e;
    }
    return t;
  }

  /** A tensor from plain numbers (converted through f32). */
  static fromArray(values: readonly number[], shape?: Shape, options: TensorOptions = {}): Tensor {
    const dtype = checkDType(options.dtype ?? 'f32');
    if (dtype === 'i32') return Tensor.fromTypedArray(Int32Array.from(values), shape, options);
    return Tensor.fromTypedArray(Float32Array.from(values), shape, { ...options, dtype });
  }

  /** @internal the native storage handle; throws DisposedError after dispose(). */
  get nativeHandle(): StorageHandle {
    if (!this.handle) throw new DisposedError(`tensor ${this.describe()} was disposed`);
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /** e.g. "f32[2, 3] on cuda:0" */
  describe(): string {
    return `${this.dtype}[${this.shape.join(', ')}] on ${this.device}`;
  }

  /** Copies the elements to a new host TypedArray (raw bits for f16/bf16). */
  toTypedArray(): TypedArrayOf[DType] {
    const buf = native(() => addon().download(this.nativeHandle, 0, this.byteLength));
    return typedView(this.dtype, buf);
  }

  /**
   * Copies `data` into this tensor starting at element `offset` (no allocation). The array must hold
   * this dtype's elements (Uint16Array raw bits for f16/bf16).
   */
  write(data: AnyTypedArray, offset = 0): void {
    const own = dtypeOfArray(data);
    const ok = own === this.dtype || (data instanceof Uint16Array && (this.dtype === 'f16' || this.dtype === 'bf16'));
    if (!ok) throw new DTypeError(`write of a ${data.constructor.name} into ${this.describe()}`);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + data.length > this.numel)
      throw new ShapeError(`write of ${data.length} elements at ${offset} exceeds ${this.describe()}`);
    native(() => addon().upload(this.nativeHandle, offset * DTYPE_BYTES[this.dtype], data));
  }

  /** The raw bytes of the elements (a host copy). */
  toBytes(): Uint8Array {
    return new Uint8Array(native(() => addon().download(this.nativeHandle, 0, this.byteLength)));
  }

  /** The elements as float32 values (f16/bf16 decoded exactly, integers converted). */
  toFloat32(): Float32Array {
    if (this.dtype === 'f32') return this.toTypedArray() as Float32Array;
    const f = this.cast('f32');
    try {
      return f.toTypedArray() as Float32Array;
    } finally {
      f.dispose();
    }
  }

  /** A new tensor with each element converted to `dtype`, on the same device. */
  cast(dtype: DType, stream?: Stream): Tensor {
    checkDType(dtype);
    const out = Tensor.empty(this.shape, { dtype, device: this.device, pinned: this.pinned });
    try {
      this.castInto(out, stream);
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /**
   * Writes `convert(this[i])` into `out` (same element count and device, any dtype). CPU: done on
   * return. CUDA: queued on `stream`, or finished on return when no stream is given.
   */
  castInto(out: Tensor, stream?: Stream): void {
    if (out.numel !== this.numel) throw new ShapeError(`cast from ${this.describe()} into ${out.describe()}: element counts differ`);
    if (!out.device.equals(this.device)) throw new DeviceError(`cast from ${this.describe()} into ${out.describe()}: devices differ`);
    native(() => addon().cast(this.nativeHandle, DTYPE_IDS[this.dtype], out.nativeHandle, DTYPE_IDS[out.dtype],
      this.numel, stream?.nativeHandle ?? null));
  }

  /** A copy on `device` (always a new tensor, even on the same device). Synchronous. */
  to(device: DeviceSpec, options: { pinned?: boolean } = {}): Tensor {
    const d = Device.parse(device);
    const out = Tensor.empty(this.shape, { dtype: this.dtype, device: d, pinned: options.pinned });
    try {
      out.copyFrom(this);
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /**
   * A copy on `device`, queued on `stream`; resolves when the copy has finished. Host memory should
   * be pinned for the copy to overlap other work. Host-to-host copies need no stream.
   */
  async toAsync(device: DeviceSpec, stream?: Stream, options: { pinned?: boolean } = {}): Promise<Tensor> {
    const d = Device.parse(device);
    const out = Tensor.empty(this.shape, { dtype: this.dtype, device: d, pinned: options.pinned });
    try {
      await out.copyFromAsync(this, stream);
    } catch (e) {
      out.dispose();
      throw e;
    }
    return out;
  }

  /** Overwrites this tensor with `src` (same dtype and element count; any devices). */
  copyFrom(src: Tensor): void {
    this.checkCopy(src);
    native(() => addon().copy(this.nativeHandle, 0, src.nativeHandle, 0, this.byteLength));
  }

  /**
   * A strided copy in one call: `rows` runs of `width` elements, run r taken from `src` at element
   * srcOffset + r * srcPitch and written here at element dstOffset + r * dstPitch. Same dtype, any
   * devices; e.g. a chunk's KV (every layer's K and V) into a cache's slots.
   */
  copyStrided(src: Tensor, o: { rows: number; width: number; dstPitch: number; srcPitch: number; dstOffset?: number; srcOffset?: number }): void {
    if (src.dtype !== this.dtype) throw new DTypeError(`copyStrided: ${src.dtype} into ${this.dtype}`);
    const { rows, width, dstPitch, srcPitch } = o;
    const dstOffset = o.dstOffset ?? 0, srcOffset = o.srcOffset ?? 0;
    for (const [k, v] of Object.entries({ rows, width, dstPitch, srcPitch, dstOffset, srcOffset }))
      if (!Number.isSafeInteger(v) || v < 0) throw new ArgumentError(`copyStrided: ${k} must be a non-negative integer, got ${v}`);
    if (rows === 0 || width === 0) return;
    if (width > dstPitch || width > srcPitch) throw new ArgumentError(`copyStrided: width ${width} exceeds a pitch (${dstPitch}, ${srcPitch})`);
    const end = (off: number, pitch: number) => off + (rows - 1) * pitch + width;
    if (end(dstOffset, dstPitch) > this.numel) throw new ShapeError(`copyStrided: writes past the end of ${this.describe()}`);
    if (end(srcOffset, srcPitch) > src.numel) throw new ShapeError(`copyStrided: reads past the end of ${src.describe()}`);
    const b = DTYPE_BYTES[this.dtype];
    native(() => addon().copy2d(this.nativeHandle, dstOffset * b, dstPitch * b, src.nativeHandle, srcOffset * b, srcPitch * b, width * b, rows));
  }

  /** Asynchronous copyFrom on `stream`; without a stream (or host to host) it runs synchronously. */
  async copyFromAsync(src: Tensor, stream?: Stream): Promise<void> {
    this.checkCopy(src);
    if (!stream || (!this.device.isCuda && !src.device.isCuda)) return this.copyFrom(src);
    const dst = this.nativeHandle;
    const s = src.nativeHandle;
    await nativeAsync(() => addon().copyAsync(dst, 0, s, 0, this.byteLength, stream.nativeHandle));
  }

  /**
   * Queues copyFrom(src) on the device's default stream, behind the work already queued there, and
   * returns without waiting; the fence's wait() blocks until it has landed. A host side should be
   * pinned, or the copy may wait for the queue. Host to host copies run at once.
   */
  copyFromQueued(src: Tensor): Fence {
    this.checkCopy(src);
    if (!this.device.isCuda && !src.device.isCuda) {
      this.copyFrom(src);
      return new Fence(null);
    }
    const dst = this.nativeHandle;
    const s = src.nativeHandle;
    return new Fence(native(() => addon().copyQueued(dst, 0, s, 0, this.byteLength)));
  }

  /**
   * A tensor sharing this one's memory: `shape` elements starting at element `offset`. Writes
   * through either are seen by both. The memory lives until the parent and every view are disposed.
   */
  view(shape: Shape, offset = 0): Tensor {
    const n = shapeNumel(shape);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + n > this.numel)
      throw new ShapeError(`view of ${n} elements at offset ${offset} exceeds ${this.describe()}`);
    const es = DTYPE_BYTES[this.dtype];
    const h = native(() => addon().view(this.nativeHandle, offset * es, n * es));
    return new Tensor(this.dtype, shape, this.device, this.pinned, h);
  }

  /** Rows [start, end) along the first dimension, as a view. */
  rows(start: number, end: number): Tensor {
    const [first = 0, ...rest] = this.shape;
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && 0 <= start && start <= end && end <= first))
      throw new ShapeError(`rows [${start}, ${end}) out of range for ${this.describe()}`);
    const inner = this.numel / Math.max(first, 1);
    return this.view([end - start, ...rest], start * inner);
  }

  /** A view with another shape of the same element count. */
  reshape(shape: Shape): Tensor {
    if (shapeNumel(shape) !== this.numel) throw new ShapeError(`cannot reshape ${this.describe()} to [${shape.join(', ')}]`);
    return this.view(shape, 0);
  }

  /** Frees the storage now. Idempotent; any later use throws DisposedError. */
  dispose(): void {
    if (!this.handle) return;
    const h = this.handle;
    this.handle = null;
    native(() => addon().release(h));
  }

  private checkCopy(src: Tensor): void {
    if (src.dtype !== this.dtype) throw new DTypeError(`copy from ${src.describe()} into ${this.describe()}: dtypes differ (use cast)`);
    if (src.numel !== this.numel) throw new ShapeError(`copy from ${src.describe()} into ${this.describe()}: element counts differ`);
  }
}

