/**
 * Devices: 'cpu' or 'cuda:N'. `resolveDevice('auto')` picks cuda:0 when the CUDA backend is built
 * and a GPU answers, else the CPU; `cudaStatus()` says why CUDA is not usable.
 */
import { addon, type CudaInfo } from './addon.js';
import { ArgumentError, DeviceError } from './errors.js';

export type DeviceSpec = Device | 'cpu' | 'cuda' | `cuda:${number}` | string;

export class Device {
  private constructor(readonly type: 'cpu' | 'cuda', readonly index: number) {}

  static readonly cpu = new Device('cpu', 0);

  static cuda(index = 0): Device {
    if (!Number.isInteger(index) || index < 0) throw new ArgumentError(`Expected a CUDA device index >= 0 but received ${index}`);
    return new Device('cuda', index);
  }

  /** Parses 'cpu', 'cuda' (= cuda:0) or 'cuda:N'. Does not check that the device exists. */
  static parse(spec: DeviceSpec): Device {
    if (spec instanceof Device) return spec;
    if (spec === 'cpu') return Device.cpu;
    const m = typeof spec === 'string' ? /^cuda(?::(\d+))?$/.exec(spec) : null;
    if (!m) throw new ArgumentError(`Expected a device 'cpu', 'cuda' or 'cuda:N' but received ${JSON.stringify(spec)}`);
    return Device.cuda(m[1] === undefined ? 0 : Number(m[1]));
  }

  /** The addon's device index: -1 for the host. */
  get nativeIndex(): number {
    return this.type === 'cpu' ? -1 : this.index;
  }

  get isCuda(): boolean {
    return this.type === 'cuda';
  }

  equals(other: DeviceSpec): boolean {
    const o = Device.parse(other);
    return o.type === this.type && o.index === this.index;
  }

  toString(): string {
    return this.type === 'cpu' ? 'cpu' : `cuda:${this.index}`;
  }

  toJSON(): string {
    return this.toString();
  }
}

/** What the addon knows about CUDA: compiled in, available, devices, cuBLAS, or why not. */
export function cudaStatus(): CudaInfo {
  return addon().cudaInfo();
}

export function cudaAvailable(): boolean {
  try {
    return cudaStatus().available;
  } catch {
    return false;
  }
}

/**
 * Whether CUDA works and how many devices it has: fixed for the life of the process (the addon probes
 * once), so asked once; every device tensor allocation checks its device against it.
 */
let cudaFacts: { available: boolean; reason: string; devices: number } | null = null;

/** Throws DeviceError naming the reason when `device` cannot be used. */
export function checkDevice(device: Device): void {
  if (!device.isCuda) return;
  if (!cudaFacts) {
    const s = cudaStatus();
    cudaFacts = { available: s.available, reason: s.reason, devices: s.devices.length };
  }
  const f = cudaFacts;
  if (!f.available) throw new DeviceError(`${device} requested but CUDA is not available: ${f.reason}`);
  if (device.index >= f.devices)
    throw new DeviceError(`${device} requested but only ${f.devices} CUDA device(s) exist`);
}

/**
 * 'auto' -> cuda:0 when usable, else cpu (the fallback `kvlab doctor` explains). Any other spec is
 * parsed and checked.
 */
export function resolveDevice(spec: DeviceSpec | 'auto'): Device {
  if (spec === 'auto') return cudaAvailable() ? Device.cuda(0) : Device.cpu;
  const d = Device.parse(spec);
  checkDevice(d);
  return d;
}
