import { doctor, type DoctorReport } from '../../runtime/doctor.js';
import { VERSION } from '../../version.js';
import type { Command } from '../command.js';

function gib(bytes: number): string {
  return `${(bytes / 2 ** 30).toFixed(1)} GiB`;
}

export function formatDoctor(r: DoctorReport): string {
  const lines = [
    `kvlab ${r.kvlab} (node ${r.node}, ${r.platform})`,
    `addon       ${r.addon.loaded ? `loaded, version ${r.addon.version} (${r.addon.build?.buildType}, ${r.addon.build?.compiler})` : 'NOT LOADED'}`,
  ];
  if (!r.addon.loaded) lines.push(r.addon.error ?? '');
  lines.push(`cpu         ${r.cpu.model}: ${r.cpu.threads} worker threads (${r.cpu.hardwareThreads} hardware threads)`);
  lines.push(`cuda        backend ${r.cuda.compiled ? 'compiled in' : 'not built'}; ${r.cuda.available ? 'available' : 'unavailable'}`);
  if (r.cuda.reason) lines.push(`            reason: ${r.cuda.reason}`);
  if (r.cuda.kernelsCompiled.length)
    lines.push(`kernels     compiled with nvcc ${r.cuda.nvccVersion} for ${r.cuda.architectures.join(', ')}: ${r.cuda.kernelsCompiled.join(', ')}`);
  else lines.push('kernels     not compiled (no nvcc at build time)');
  if (r.cuda.driverVersion || r.cuda.runtimeVersion)
    lines.push(`            driver ${r.cuda.driverVersion ?? 'none'}, runtime ${r.cuda.runtimeVersion ?? 'none'}`);
  for (const d of r.cuda.devices)
    lines.push(`  cuda:${d.index}    ${d.name}, ${gib(d.totalMemory)} (${gib(d.freeMemory)} free), sm_${d.computeCapability.replace('.', '')}, ${d.multiprocessors} SMs, ~${d.peakBandwidthGBs.toFixed(0)} GB/s peak`);
  lines.push(`cublas      ${r.cublas.available ? `available (version ${r.cublas.version})` : `unavailable: ${r.cublas.reason}`}`);
  lines.push(`default     --device auto -> ${r.defaultDevice}`);
  return lines.join('\n');
}

export const doctorCommand: Command = {
  name: 'doctor',
  summary: 'Report the native addon, CPU threads, CUDA build and devices, cuBLAS, and why CUDA is unavailable if it is.',
  options: {
    json: { type: 'boolean', help: 'print the report as JSON' },
  },
  async run(values, _pos, io) {
    const r = doctor(VERSION);
    io.out(values.json ? JSON.stringify(r, null, 2) : formatDoctor(r));
    return r.addon.loaded ? 0 : 1;
  },
};
