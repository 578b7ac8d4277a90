/**
 * The facts `kvlab doctor` reports: the addon (loaded? version?), CPU threads, whether CUDA was
 * compiled in, the devices CUDA sees, cuBLAS, and, where CUDA is unusable, the exact reason.
 */
import { cpus } from 'node:os';
import { addon, addonCandidates, type BuildInfo, type CudaDeviceInfo } from './addon.js';

export interface DoctorReport {
  kvlab: string;
  node: string;
  platform: string;
  addon: { loaded: boolean; version: string | null; error: string | null; build: BuildInfo | null; paths: string[] };
  cpu: { model: string; threads: number; hardwareThreads: number };
  cuda: {
    compiled: boolean;
    available: boolean;
    reason: string | null;
    kernelsCompiled: string[];
    architectures: string[];
    nvccVersion: string | null;
    driverVersion: string | null;
    runtimeVersion: string | null;
    devices: CudaDeviceInfo[];
  };
  cublas: { available: boolean; version: number | null; reason: string | null };
  /** The device `--device auto` picks. */
  defaultDevice: 'cpu' | 'cuda:0';
}

/** CUDA encodes versions as 1000 * major + 10 * minor. */
function cudaVersion(v: number): string | null {
  return v > 0 ? `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}` : null;
}

function list(s: string): string[] {
  return s ? s.split(',').filter(Boolean) : [];
}

export function doctor(packageVersion: string): DoctorReport {
  const cpuList = cpus();
  const base = {
    kvlab: packageVersion,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
  };
  let a;
  try {
    a = addon();
  } catch (e) {
    return {
      ...base,
      addon: { loaded: false, version: null, error: (e as Error).message, build: null, paths: addonCandidates() },
      cpu: { model: cpuList[0]?.model ?? 'unknown', threads: 0, hardwareThreads: cpuList.length },
      cuda: {
        compiled: false, available: false, reason: 'the native addon is not loaded', kernelsCompiled: [],
        architectures: [], nvccVersion: null, driverVersion: null, runtimeVersion: null, devices: [],
      },
      cublas: { available: false, version: null, reason: 'the native addon is not loaded' },
      defaultDevice: 'cpu',
    };
  }
  const build = a.buildInfo();
  const c = a.cudaInfo();
  const threads = a.cpuThreads();
  return {
    ...base,
    addon: { loaded: true, version: build.version, error: null, build, paths: addonCandidates() },
    cpu: { model: cpuList[0]?.model ?? 'unknown', threads: threads.pool, hardwareThreads: threads.hardware },
    cuda: {
      compiled: c.compiled,
      available: c.available,
      reason: c.available ? null : c.reason,
      kernelsCompiled: list(build.kernelsCompiled),
      architectures: list(build.cudaArchitectures).map((x) => `sm_${x}`),
      nvccVersion: build.nvccVersion || null,
      driverVersion: cudaVersion(c.driverVersion),
      runtimeVersion: cudaVersion(c.runtimeVersion),
      devices: c.devices,
    },
    cublas: {
      available: c.cublas,
      version: c.cublas ? c.cublasVersion : null,
      reason: c.cublas ? null : c.cublasReason || c.reason,
    },
    defaultDevice: c.available ? 'cuda:0' : 'cpu',
  };
}
