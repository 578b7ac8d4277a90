/**
 * What the store holds per key: raw KV (a tensor in the design's layout) or a codec bitstream (bytes
 * the codec's container defines; the store never looks inside). Off the device (disk, Redis) an
 * entry is serialised as:
 *
 *   "KVSE" | u16 version | u16 0 | u32 headerLength | header (UTF-8 JSON) | u32 crc32(header) | sections
 *
 * The header names the sections: one per layer for raw KV ([2, n, kvHeads, headDim] each, so one
 * layer can be read and verified on its own), one for a bitstream. Each section carries its CRC-32,
 * checked on every read; a short file or a bad checksum is a CorruptEntryError, never data.
 */
import { crc32 } from 'node:zlib';
import { Device, type DeviceSpec } from '../runtime/device.js';
import { DTYPE_BYTES, isDType, type DType } from '../runtime/dtype.js';
import { ArgumentError, ShapeError } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import { CorruptEntryError } from './errors.js';

/** Raw KV: kv is [nLayers, 2, n, nKvHeads, headDim]; the caller keeps ownership of what it passes in. */
export interface RawEntry {
  readonly kind: 'raw';
  readonly kv: Tensor;
  /** [n]: the positions K was rotated at. */
  readonly positions: Int32Array;
  readonly fingerprint: string;
}

/** A codec container (KVCodec.encode's output). */
export interface BitstreamEntry {
  readonly kind: 'bitstream';
  readonly bytes: Uint8Array;
  readonly codec: string;
  readonly level: string;
}

export type Entry = RawEntry | BitstreamEntry;

/** An entry's description without its payload (what the header holds). */
export interface EntryInfo {
  readonly kind: 'raw' | 'bitstream';
  /** Payload bytes (all layers, or the bitstream). */
  readonly payloadBytes: number;
  readonly dtype?: DType;
  /** raw: [nLayers, 2, n, nKvHeads, headDim]. */
  readonly shape?: readonly number[];
  readonly positions?: readonly number[];
  readonly fingerprint?: string;
  readonly codec?: string;
  readonly level?: string;
}

export interface Section { readonly offset: number; readonly length: number; readonly crc: number }

interface Header extends EntryInfo { readonly sections: readonly Section[] }

export interface ParsedHeader {
  readonly info: EntryInfo;
  readonly sections: readonly Section[];
  /** Bytes of the whole serialised entry. */
  readonly totalBytes: number;
}

const MAGIC = 0x4553564b; // "KVSE" little-endian
const VERSION = 1;
/** Bytes before the header JSON. */
export const PREAMBLE_BYTES = 12;

/** Checks an entry a caller wants to store; throws ArgumentError/ShapeError naming the problem. */
export function checkEntry(entry: Entry): void {
  if (entry.kind === 'raw') {
    const s = entry.kv.shape;
    if (s.length !== 5 || s[1] !== 2) throw new ShapeError(`raw KV must be [nLayers, 2, n, nKvHeads, headDim] but is ${entry.kv.describe()}`);
    if (!(entry.positions instanceof Int32Array) || entry.positions.length !== s[2])
      throw new ShapeError(`raw KV has ${s[2]} tokens but ${entry.positions?.length} positions`);
    if (typeof entry.fingerprint !== 'string' || !entry.fingerprint) throw new ArgumentError('raw KV needs the model fingerprint');
  } else if (entry.kind === 'bitstream') {
    if (!(entry.bytes instanceof Uint8Array) || entry.bytes.byteLength === 0) throw new ArgumentError('a bitstream entry needs bytes (a non-empty Uint8Array)');
    if (!entry.codec || !entry.level) throw new ArgumentError('a bitstream entry needs its codec and level');
  } else {
    throw new ArgumentError(`Expected entry kind 'raw' or 'bitstream' but received ${JSON.stringify((entry as { kind?: unknown }).kind)}`);
  }
}

export function entryInfo(entry: Entry): EntryInfo {
  if (entry.kind === 'bitstream')
    return { kind: 'bitstream', payloadBytes: entry.bytes.byteLength, codec: entry.codec, level: entry.level };
  return {
    kind: 'raw', payloadBytes: entry.kv.byteLength, dtype: entry.kv.dtype, shape: [...entry.kv.shape],
    positions: [...entry.positions], fingerprint: entry.fingerprint,
  };
}

/** Bytes of one layer's K and V of a raw entry. */
export function layerBytes(info: EntryInfo): number {
  const [, , n = 0, h = 0, d = 0] = info.shape ?? [];
  return 2 * n * h * d * DTYPE_BYTES[info.dtype ?? 'u8'];
}

export function layerCount(info: EntryInfo): number {
  return info.kind === 'raw' ? info.shape![0]! : 0;
}

/** The payload as host bytes (a copy for raw KV; the caller's array for a bitstream). */
export function payloadBytes(entry: Entry): Uint8Array {
  return entry.kind === 'raw' ? entry.kv.toBytes() : entry.bytes;
}

/** Serialises an entry (header + sections) into one buffer. */
export function serializeEntry(entry: Entry): Uint8Array {
  checkEntry(entry);
  return serializeParts(entryInfo(entry), payloadBytes(entry));
}

/** Serialises a payload already on the host under `info`. */
export function serializeParts(info: EntryInfo, payload: Uint8Array): Uint8Array {
  const cuts = info.kind === 'raw' ? layerCount(info) : 1;
  const step = info.kind === 'raw' ? layerBytes(info) : payload.byteLength;
  if (cuts * step !== payload.byteLength) throw new ShapeError(`payload of ${payload.byteLength} bytes does not match the entry (${cuts} x ${step})`);
  const sections: Section[] = [];
  for (let i = 0; i < cuts; i++) sections.push({ offset: i * step, length: step, crc: crc32(payload.subarray(i * step, (i + 1) * step)) });
  const json = Buffer.from(JSON.stringify({ ...info, sections } satisfies Header), 'utf8');
  const out = new Uint8Array(PREAMBLE_BYTES + json.length + 4 + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint16(4, VERSION, true);
  dv.setUint32(8, json.length, true);
  out.set(json, PREAMBLE_BYTES);
  dv.setUint32(PREAMBLE_BYTES + json.length, crc32(json), true);
  out.set(payload, PREAMBLE_BYTES + json.length + 4);
  return out;
}

/** Header JSON length from the first PREAMBLE_BYTES (validates magic and version). */
export function readPreamble(pre: Uint8Array, what: string): number {
  if (pre.byteLength < PREAMBLE_BYTES) throw new CorruptEntryError(`${what}: truncated (${pre.byteLength} bytes)`);
  const dv = new DataView(pre.buffer, pre.byteOffset, PREAMBLE_BYTES);
  if (dv.getUint32(0, true) !== MAGIC) throw new CorruptEntryError(`${what}: bad magic`);
  if (dv.getUint16(4, true) !== VERSION) throw new CorruptEntryError(`${what}: unknown version ${dv.getUint16(4, true)}`);
  if (dv.getUint16(6, true) !== 0) throw new CorruptEntryError(`${what}: reserved bytes are not zero`);
  const len = dv.getUint32(8, true);
  if (len > 64 << 20) throw new CorruptEntryError(`${what}: header length ${len} is implausible`);
  return len;
}

/** Parses and validates the header (`bytes` starts at the preamble and holds at least header + crc). */
export function parseHeader(bytes: Uint8Array, what: string): ParsedHeader {
  const len = readPreamble(bytes, what);
  if (bytes.byteLength < PREAMBLE_BYTES + len + 4) throw new CorruptEntryError(`${what}: truncated header`);
  const json = bytes.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + len);
  const want = new DataView(bytes.buffer, bytes.byteOffset + PREAMBLE_BYTES + len, 4).getUint32(0, true);
  if (crc32(json) !== want) throw new CorruptEntryError(`${what}: header checksum mismatch`);
  let h: Header;
  try {
    h = JSON.parse(Buffer.from(json).toString('utf8')) as Header;
  } catch {
    throw new CorruptEntryError(`${what}: header is not JSON`);
  }
  validateHeader(h, what);
  const { sections, ...info } = h;
  return { info, sections, totalBytes: PREAMBLE_BYTES + len + 4 + info.payloadBytes };
}

function validateHeader(h: Header, what: string): void {
  const bad = (m: string) => new CorruptEntryError(`${what}: ${m}`);
  if (h.kind !== 'raw' && h.kind !== 'bitstream') throw bad('unknown kind');
  if (!Number.isSafeInteger(h.payloadBytes) || h.payloadBytes < 0) throw bad('bad payload length');
  if (!Array.isArray(h.sections)) throw bad('no sections');
  let at = 0;
  for (const s of h.sections) {
    if (s.offset !== at || !Number.isSafeInteger(s.length) || s.length < 0 || !Number.isInteger(s.crc)) throw bad('bad section table');
    at += s.length;
  }
  if (at !== h.payloadBytes) throw bad('sections do not cover the payload');
  if (h.kind === 'raw') {
    if (!isDType(h.dtype ?? '') || !Array.isArray(h.shape) || h.shape.length !== 5 || h.shape[1] !== 2) throw bad('bad raw KV shape');
    if (!h.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad('bad raw KV shape');
    if (h.sections.length !== h.shape[0] || h.sections.some((s) => s.length !== layerBytes(h))) throw bad('sections do not match the layers');
    if (!Array.isArray(h.positions) || h.positions.length !== h.shape[2]) throw bad('positions do not match the tokens');
  } else if (h.sections.length !== 1 || typeof h.codec !== 'string' || typeof h.level !== 'string') {
    throw bad('bad bitstream header');
  }
}

/** Verifies a section's CRC; throws CorruptEntryError on mismatch. */
export function checkSection(data: Uint8Array, s: Section, what: string): void {
  if (data.byteLength !== s.length) throw new CorruptEntryError(`${what}: section truncated (${data.byteLength} of ${s.length} bytes)`);
  if (crc32(data) !== s.crc) throw new CorruptEntryError(`${what}: section at ${s.offset} fails its checksum`);
}

/** One raw layer [2, n, kvHeads, headDim] from its verified bytes. */
export function layerTensor(info: EntryInfo, data: Uint8Array, device: DeviceSpec): Tensor {
  const [, , n = 0, h = 0, d = 0] = info.shape!;
  return Tensor.fromBytes(data, [2, n, h, d], { dtype: info.dtype!, device: Device.parse(device) });
}

/** Rebuilds an entry from a whole serialised buffer, verifying every checksum. */
export function deserializeEntry(bytes: Uint8Array, device: DeviceSpec = 'cpu', what = 'entry'): Entry {
  const p = parseHeader(bytes, what);
  if (bytes.byteLength !== p.totalBytes) throw new CorruptEntryError(`${what}: ${bytes.byteLength} bytes but the header says ${p.totalBytes}`);
  const base = p.totalBytes - p.info.payloadBytes;
  const payload = bytes.subarray(base);
  for (const s of p.sections) checkSection(payload.subarray(s.offset, s.offset + s.length), s, what);
  return entryFromPayload(p.info, payload, device);
}

/** An entry from a verified payload. */
export function entryFromPayload(info: EntryInfo, payload: Uint8Array, device: DeviceSpec = 'cpu'): Entry {
  if (info.kind === 'bitstream') return { kind: 'bitstream', bytes: Uint8Array.from(payload), codec: info.codec!, level: info.level! };
  const kv = Tensor.fromBytes(payload, info.shape!, { dtype: info.dtype!, device: Device.parse(device) });
  return { kind: 'raw', kv, positions: Int32Array.from(info.positions!), fingerprint: info.fingerprint! };
}

/** Frees what an entry owns (the KV tensor of a raw entry). */
export function disposeEntry(entry: Entry): void {
  if (entry.kind === 'raw') entry.kv.dispose();
}
