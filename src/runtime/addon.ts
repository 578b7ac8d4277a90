/**
 * The one loader of kvlab's native addon. It looks for the built `kvlab.node` where cmake-js puts
 * it, loads it once, and on failure throws one AddonLoadError listing every place tried, what each
 * said, and how to fix it. `kvlab doctor` reports the same.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { AddonLoadError } from './errors.js';

/** Opaque handles the addon hands out; only the addon can read them. */
export type StorageHandle = { readonly __kvlabStorage: unique symbol };
export type StreamHandle = { readonly __kvlabStream: unique symbol };
export type FenceHandle = { readonly __kvlabFence: unique symbol };
export type LayerPlanHandle = { readonly __kvlabLayerPlan: unique symbol };

export interface BuildInfo {
  version: string;
  napiVersion: number;
  buildType: string;
  compiler: string;
  cudaCompiled: boolean;
  cudaReason: string;
  nvccVersion: string;
  cudaArchitectures: string;
  kernelsCompiled: string;
  cublasFoundAtBuild: boolean;
}

export interface CudaDeviceInfo {
  index: number;
  name: string;
  totalMemory: number;
  freeMemory: number;
  computeCapability: string;
  multiprocessors: number;
  l2Bytes: number;
  peakBandwidthGBs: number;
}

export interface CudaInfo {
  compiled: boolean;
  available: boolean;
  reason: string;
  driverVersion: number;
  runtimeVersion: number;
  cublas: boolean;
  cublasVersion: number;
  cublasReason: string;
  devices: CudaDeviceInfo[];
}

export interface NativeMemoryCounter {
  device: number;
  liveBytes: number;
  peakBytes: number;
  liveAllocations: number;
  totalAllocations: number;
}

/** The addon's surface (native/binding). Device index -1 is the host. */
export interface NativeAddon {
  buildInfo(): BuildInfo;
  cudaInfo(): CudaInfo;
  cpuThreads(): { pool: number; hardware: number };
  setCpuThreads(n: number): number;
  alloc(device: number, bytes: number, pinned: boolean): StorageHandle;
  release(h: StorageHandle): void;
  view(h: StorageHandle, offset: number, bytes: number): StorageHandle;
  upload(h: StorageHandle, offset: number, data: ArrayBufferView | ArrayBuffer): void;
  download(h: StorageHandle, offset: number, bytes: number): ArrayBuffer;
  copy(dst: StorageHandle, dstOffset: number, src: StorageHandle, srcOffset: number, bytes: number): void;
  copy2d(dst: StorageHandle, dstOffset: number, dstPitch: number, src: StorageHandle, srcOffset: number, srcPitch: number,
    width: number, rows: number): void;
  copyAsync(dst: StorageHandle, dstOffset: number, src: StorageHandle, srcOffset: number, bytes: number,
    stream: StreamHandle): Promise<void>;
  copyQueued(dst: StorageHandle, dstOffset: number, src: StorageHandle, srcOffset: number, bytes: number): FenceHandle;
  fenceWait(f: FenceHandle): void;
  profilerRange(device: number, start: boolean): void;
  memoryStats(): NativeMemoryCounter[];
  streamCreate(device: number): StreamHandle;
  streamSynchronize(s: StreamHandle): Promise<void>;
  streamDestroy(s: StreamHandle): void;
  deviceSynchronize(device: number): void;
  cast(src: StorageHandle, srcDtype: number, dst: StorageHandle, dstDtype: number, count: number,
    stream?: StreamHandle | null): void;
  embedding(ids: StorageHandle, n: number, table: StorageHandle, tableDtype: number, vocab: number, dim: number,
    out: StorageHandle, outDtype: number, stream: StreamHandle | null): void;
  rmsnorm(x: StorageHandle, w: StorageHandle, out: StorageHandle, dtype: number, n: number, dim: number, eps: number,
    stream: StreamHandle | null): void;
  matmul(x: StorageHandle, w: StorageHandle, bias: StorageHandle | null, out: StorageHandle, dtype: number, n: number,
    k: number, m: number, stream: StreamHandle | null): void;
  rope(x: StorageHandle, dtype: number, pos: StorageHandle, invFreq: StorageHandle, n: number, heads: number,
    headDim: number, stream: StreamHandle | null): void;
  attention(q: StorageHandle, k: StorageHandle, v: StorageHandle, dtype: number, qpos: StorageHandle, kpos: StorageHandle,
    out: StorageHandle, nq: number, nk: number, hq: number, hkv: number, d: number, scale: number,
    stream: StreamHandle | null): void;
  attentionMass(q: StorageHandle, k: StorageHandle, dtype: number, qpos: StorageHandle, kpos: StorageHandle, out: StorageHandle,
    nq: number, nk: number, hq: number, hkv: number, d: number, scale: number, stream: StreamHandle | null): void;
  swiglu(gate: StorageHandle, up: StorageHandle, out: StorageHandle, dtype: number, n: number, stream: StreamHandle | null): void;
  add(a: StorageHandle, b: StorageHandle, out: StorageHandle, dtype: number, n: number, stream: StreamHandle | null): void;
  topKRows(v: StorageHandle, n: number, k: number, out: StorageHandle, stream: StreamHandle | null): void;
  rowSqDiff(a: StorageHandle, b: StorageHandle, out: StorageHandle, dtype: number, n: number, w: number, accumulate: boolean,
    stream: StreamHandle | null, bRows?: StorageHandle, bRowCount?: number): void;
  gatherRows(src: StorageHandle, srcRows: number, idx: StorageHandle, dst: StorageHandle, n: number, widthBytes: number,
    stream: StreamHandle | null): void;
  scatterRows(src: StorageHandle, idx: StorageHandle, dst: StorageHandle, dstRows: number, n: number, widthBytes: number,
    stream: StreamHandle | null): void;
  sample(logits: StorageHandle, vocab: number, temperature: number, topP: number, u: number, scratch: StorageHandle | null,
    stream: StreamHandle | null, queued?: boolean): number;
  layerPlanCreate(dims: { dim: number; hidden: number; nHeads: number; nKvHeads: number; headDim: number; eps: number; fusedDecode?: boolean;
    scale: number; dtype: number }, layers: (StorageHandle | null)[][], invFreq: StorageHandle): LayerPlanHandle;
  layerPlanRun(plan: LayerPlanHandle, layer: number, x: StorageHandle, n: number, pos: StorageHandle, slots: StorageHandle,
    kCache: StorageHandle, vCache: StorageHandle, cacheRows: number, kpos: StorageHandle, nk: number,
    stream: StreamHandle | null, kvOnly?: boolean): void;
  fillUniform(out: StorageHandle, dtype: number, n: number, seed: number, lo: number, hi: number,
    stream: StreamHandle | null): void;
}

/** The package root: src/runtime/ and dist/runtime/ both sit two levels below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

const CANDIDATES = ['build/Release/kvlab.node', 'build/Debug/kvlab.node'];

let loaded: NativeAddon | undefined;
let failure: AddonLoadError | undefined;

/** Paths the loader tries, in order. */
export function addonCandidates(): string[] {
  return CANDIDATES.map((p) => PACKAGE_ROOT + p);
}

/** Loads the addon once; throws AddonLoadError (the same one each time) when it cannot. */
export function addon(): NativeAddon {
  if (loaded) return loaded;
  if (failure) throw failure;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const path of addonCandidates()) {
    if (!existsSync(path)) {
      tried.push(`  ${path}: not built`);
      continue;
    }
    try {
      loaded = require(path) as NativeAddon;
      return loaded;
    } catch (e) {
      tried.push(`  ${path}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  failure = new AddonLoadError(
    'kvlab native addon could not be loaded. Tried:\n' + tried.join('\n') +
      '\nPossible fixes:\n' +
      '  - build it: `npm run build` (needs cmake >= 3.18 and a C++17 compiler; `npm ci` builds it too)\n' +
      '  - on a GPU host without npm: `node node_modules/cmake-js/bin/cmake-js compile`\n' +
      '  - a CUDA build loaded on a machine without libcublas: rebuild here, or add the CUDA lib64 folder to LD_LIBRARY_PATH',
  );
  throw failure;
}

/** True when the addon loads; never throws. */
export function addonAvailable(): boolean {
  try {
    addon();
    return true;
  } catch {
    return false;
  }
}
