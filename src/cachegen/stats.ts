/** Stored size of a container as DESIGN.md defines it: every byte, per K and V value encoded. */
import { inspectContainer } from './codecs.js';

export interface ContainerStats {
  bytes: number;
  values: number;
  bitsPerValue: number;
  ratioVsFp16: number;
  /** Bytes of scales and shipped tables. */
  sideBytes: number;
  payloadBytes: number;
}

export function containerStats(bytes: Uint8Array): ContainerStats {
  const i = inspectContainer(bytes);
  const values = i.layers * 2 * i.tokens * i.heads * i.headDim;
  const bitsPerValue = (bytes.length * 8) / values;
  return { bytes: bytes.length, values, bitsPerValue, ratioVsFp16: 16 / bitsPerValue, sideBytes: i.sideBytes, payloadBytes: i.payloadBytes };
}
