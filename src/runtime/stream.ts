/**
 * CUDA streams: queues of device work. Copies and kernels queued on one stream run in order;
 * separate streams overlap (CacheBlend loads layer i+1 while recomputing layer i).
 */
import { addon, type FenceHandle, type StreamHandle } from './addon.js';
import { Device, checkDevice, type DeviceSpec } from './device.js';
import { DeviceError, DisposedError, native, nativeAsync } from './errors.js';

export class Stream {
  private handle: StreamHandle | null;

  private constructor(readonly device: Device, handle: StreamHandle) {
    this.handle = handle;
  }

  /** Creates a non-blocking stream on a CUDA device. */
  static create(device: DeviceSpec = 'cuda:0'): Stream {
    const d = Device.parse(device);
    if (!d.isCuda) throw new DeviceError(`streams exist only on CUDA devices, not on ${d}`);
    checkDevice(d);
    return new Stream(d, native(() => addon().streamCreate(d.index)));
  }

  /** @internal the native handle; throws DisposedError after dispose(). */
  get nativeHandle(): StreamHandle {
    if (!this.handle) throw new DisposedError(`stream on ${this.device} was disposed`);
    return this.handle;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /** Resolves once everything queued so far has finished (waits off the main thread). */
  synchronize(): Promise<void> {
    const h = this.nativeHandle;
    return nativeAsync(() => addon().streamSynchronize(h));
  }

  /** Waits for queued work, then frees the stream. Idempotent. */
  dispose(): void {
    if (!this.handle) return;
    const h = this.handle;
    this.handle = null;
    native(() => addon().streamDestroy(h));
  }
}

/** The completion of a queued copy (Tensor.copyFromQueued). */
export class Fence {
  /** @internal */
  constructor(private readonly handle: FenceHandle | null) {}

  /** Blocks until the copy has landed (at once for a copy that was not queued). */
  wait(): void {
    const h = this.handle;
    if (h) native(() => addon().fenceWait(h));
  }
}

/**
 * Marks the region a profiler started with `--profile-from-start off` records (ncu, nsys):
 * `profilerRange(d, true)` before it, `profilerRange(d, false)` after.
 */
export function profilerRange(device: DeviceSpec, start: boolean): void {
  const d = Device.parse(device);
  if (!d.isCuda) throw new DeviceError(`profilerRange needs a CUDA device, not ${d}`);
  native(() => addon().profilerRange(d.index, start));
}

/** Blocks until all work queued on `device` has finished (a no-op for the CPU, whose ops are synchronous). */
export function synchronize(device: DeviceSpec): void {
  const d = Device.parse(device);
  if (d.isCuda) native(() => addon().deviceSynchronize(d.index));
}
