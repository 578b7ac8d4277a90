export { addon, addonAvailable, PACKAGE_ROOT } from './addon.js';
export type { BuildInfo, CudaInfo, CudaDeviceInfo } from './addon.js';
export { Device, cudaAvailable, cudaStatus, checkDevice, resolveDevice, type DeviceSpec } from './device.js';
export { DTYPES, DTYPE_BYTES, isDType, type DType, type AnyTypedArray, type TypedArrayOf } from './dtype.js';
export * from './errors.js';
export { memoryStats, setCpuThreads, cpuThreads, type MemoryStats } from './memory.js';
export { Stream } from './stream.js';
export { Tensor, shapeNumel, type Shape, type TensorOptions } from './tensor.js';
export { doctor, type DoctorReport } from './doctor.js';
