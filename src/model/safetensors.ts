/**
 * safetensors (Hugging Face's tensor container), single files and sharded checkpoints.
 *
 * Layout: a u64 little-endian header length N, then N bytes of UTF-8 JSON (possibly padded with
 * trailing spaces), then the data section. The header maps each tensor name to
 * `{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}`, offsets relative to the data
 * section, and may hold `"__metadata__"`, a map of strings to strings. The tensors tile the data
 * section exactly: no overlaps, no holes, nothing after the last one.
 *
 * Every field, size and offset is checked before any tensor data is read; a problem is a
 * `ModelFormatError` naming the file and the tensor. Loading converts F32, F16 and BF16 to
 * float32 exactly (F16 and BF16 values are all representable in float32, NaN payloads included);
 * other dtypes are recognised and sized, and rejected by name when loaded.
 *
 * Files are read through a file handle, one tensor at a time, so memory holds the loaded tensors
 * plus at most one tensor's raw bytes, never a second copy of the file.
 *
 * Sharded checkpoints: `model.safetensors.index.json` holds `{"weight_map": {tensor: file}}`;
 * every listed tensor must be in the shard the index names, and every tensor of every shard must
 * be listed there (so each tensor appears exactly once).
 */

import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import { dirname, isAbsolute, join, resolve, sep } from 'node:path';
import { ModelFormatError } from './errors.js';
import type { WeightTensor } from './weights.js';
import { statOrNull, isPlainObject, show } from './file-util.js';

/** One tensor's entry in a safetensors header. */
export interface SafetensorsEntry {
  name: string;
  /** As stored, e.g. 'BF16'. */
  dtype: string;
  shape: number[];
  /** Byte offset of the data in the file (data section start + begin). */
  offset: number;
  byteLength: number;
}

/** A parsed, validated safetensors header. */
export interface SafetensorsHeader {
  /** The file (or source label) it came from. */
  path: string;
  fileSize: number;
  /** N, the length of the JSON header. */
  headerLength: number;
  /** Byte offset of the data section (8 + N). */
  dataOffset: number;
  /** `__metadata__`, or null when absent. */
  metadata: Record<string, string> | null;
  /** In header order. */
  tensors: Map<string, SafetensorsEntry>;
}

/** Tensors across the files of one checkpoint (a single file, or the shards of an index). */
export interface SafetensorsCheckpoint {
  /** The file, or index file, it was opened from. */
  source: string;
  /** One header per file, in the order first named. */
  files: SafetensorsHeader[];
  /** Tensor name -> the header of the file holding it. */
  tensors: Map<string, SafetensorsHeader>;
}

/** Data types and their sizes in bits (the safetensors format's list). */
const DTYPE_BITS: Record<string, number> = {
  BOOL: 8, U8: 8, I8: 8, F8_E5M2: 8, F8_E4M3: 8, F8_E8M0: 8,
  F4: 4, F6_E2M3: 6, F6_E3M2: 6,
  I16: 16, U16: 16, F16: 16, BF16: 16,
  I32: 32, U32: 32, F32: 32,
  I64: 64, U64: 64, F64: 64, C64: 64,
};
const LOADABLE = ['F32', 'F16', 'BF16'];
/** A guard against hostile files, as in the reference implementation (headers are far smaller). */
const MAX_HEADER_BYTES = 100_000_000;
/** Largest single read request (Node caps one read below 2 GiB). */
const READ_CHUNK = 1 << 30;
export const SAFETENSORS_INDEX = 'model.safetensors.index.json';
export const SAFETENSORS_SINGLE = 'model.safetensors';

// ---------------------------------------------------------------------------------------------
// Header

/**
 * Parse and validate the header of a safetensors file of `fileSize` bytes whose first bytes are
 * `bytes` (at least 8 + N of them). Checks: N within the file (and at most 100 MB), valid UTF-8
 * JSON object, every dtype known, every shape a list of non-negative integers, shape product x
 * dtype size == end - begin, offsets within the data section, and the tensors tiling it exactly.
 */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const n = headerLength(bytes, fileSize, source);
  if (bytes.length < 8 + n) {
    throw new ModelFormatError(source, `truncated: the ${n}-byte header needs bytes 8..${8 + n} but only ${bytes.length} were given`);
  }
  return parseHeaderJson(bytes.subarray(8, 8 + n), fileSize, source);
}

/** Read and validate the header of the safetensors file at `path` (no tensor data is read). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const fh = await openFile(path);
  try {
    return await readHeader(fh, path);
  } finally {
    await fh.close();
  }
}

/** N from the first 8 bytes, checked against the file size. */
function headerLength(bytes: Uint8Array, fileSize: number, source: string): number {
  if (fileSize < 8 || bytes.length < 8) {
    throw new ModelFormatError(source, `truncated: a safetensors file starts with an 8-byte header length but the file has ${Math.min(fileSize, bytes.length)} bytes`);
  }
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(fileSize - 8)) {
    throw new ModelFormatError(source, `header length ${n} runs past the end of the file (${fileSize} bytes, so at most ${fileSize - 8}); truncated, or not a safetensors file`);
  }
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new ModelFormatError(source, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit on safetensors headers`);
  }
  if (n < 2n) throw new ModelFormatError(source, `header length ${n} is too small for a JSON object`);
  return Number(n);
}

function parseHeaderJson(json: Uint8Array, fileSize: number, source: string): SafetensorsHeader {
  const headerLength = json.length;
  const dataOffset = 8 + headerLength;
  const dataLength = fileSize - dataOffset;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(json);
  } catch (e) {
    throw new ModelFormatError(source, 'the header is not valid UTF-8', { cause: e });
  }
  if (text[0] !== '{') {
    throw new ModelFormatError(source, `the header does not start with "{" (starts with ${JSON.stringify(text.slice(0, 16))}); not a safetensors file`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(source, `the header is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isPlainObject(raw)) throw new ModelFormatError(source, 'the header is not a JSON object');

  let metadata: Record<string, string> | null = null;
  const tensors = new Map<string, SafetensorsEntry>();
  const ranges: Array<{ name: string; begin: number; end: number }> = [];
  for (const [name, value] of Object.entries(raw)) {
    if (name === '__metadata__') {
      if (!isPlainObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
        throw new ModelFormatError(source, '__metadata__ must be an object of strings');
      }
      metadata = value as Record<string, string>;
      continue;
    }
    if (!isPlainObject(value)) throw new ModelFormatError(source, `tensor ${name}: expected an object with dtype, shape and data_offsets`);
    const { dtype, shape, data_offsets: offsets } = value;
    if (typeof dtype !== 'string') throw new ModelFormatError(source, `tensor ${name}: dtype must be a string but is ${show(dtype)}`);
    const bits = DTYPE_BITS[dtype];
    if (bits === undefined) {
      throw new ModelFormatError(source, `tensor ${name} has unknown dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BITS).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw new ModelFormatError(source, `tensor ${name}: shape must be a list of non-negative integers but is ${show(shape)}`);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && (o as number) >= 0)) {
      throw new ModelFormatError(source, `tensor ${name}: data_offsets must be two non-negative integers but is ${show(offsets)}`);
    }
    const [begin, end] = offsets as [number, number];
    if (end < begin) throw new ModelFormatError(source, `tensor ${name}: data_offsets [${begin}, ${end}] end before they begin`);
    let count = 1;
    for (const d of shape as number[]) count *= d;
    const bitLength = count * bits;
    if (!Number.isSafeInteger(bitLength) || bitLength % 8 !== 0 || bitLength / 8 !== end - begin) {
      throw new ModelFormatError(
        source,
        `tensor ${name}: ${dtype} shape [${shape.join(', ')}] needs ${bitLength / 8} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`,
      );
    }
    if (end > dataLength) {
      throw new ModelFormatError(
        source,
        `truncated: tensor ${name} needs bytes ${begin}..${end} of the data section but the file holds only ${dataLength} bytes of data`,
      );
    }
    tensors.set(name, { name, dtype, shape: shape as number[], offset: dataOffset + begin, byteLength: end - begin });
    ranges.push({ name, begin, end });
  }

  // The tensors must tile [0, dataLength): sorted by begin, each starts where the last ended.
  ranges.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  let last = '';
  for (const r of ranges) {
    if (r.begin < at) throw new ModelFormatError(source, `tensors ${last} and ${r.name} overlap (bytes ${r.begin}..${at} of the data section)`);
    if (r.begin > at) throw new ModelFormatError(source, `bytes ${at}..${r.begin} of the data section belong to no tensor (a hole before ${r.name})`);
    at = r.end;
    last = r.name;
  }
  if (at !== dataLength) {
    throw new ModelFormatError(source, `unexpected trailing bytes: the tensors end at byte ${at} of the data section but it has ${dataLength}`);
  }
  return { path: source, fileSize, headerLength, dataOffset, metadata, tensors };
}

// ---------------------------------------------------------------------------------------------
// Data

/**
 * The values of `entry` as float32, from `bytes` (exactly its `byteLength` raw bytes). F32 is
 * copied (or viewed, with `view`), F16 and BF16 are widened exactly. Other dtypes throw
 * `ModelFormatError` naming the tensor and dtype.
 */
export function decodeSafetensorsData(entry: SafetensorsEntry, bytes: Uint8Array, source: string, view = false): Float32Array {
  checkLoadable(entry, source);
  if (bytes.length !== entry.byteLength) {
    throw new ModelFormatError(source, `tensor ${entry.name}: expected ${entry.byteLength} bytes but received ${bytes.length}`);
  }
  const n = entry.byteLength / (entry.dtype === 'F32' ? 4 : 2);
  if (entry.dtype === 'F32') {
    if (LITTLE_ENDIAN && view && bytes.byteOffset % 4 === 0) return new Float32Array(bytes.buffer, bytes.byteOffset, n);
    const out = new Float32Array(n);
    if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
    else {
      const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let k = 0; k < n; k++) out[k] = dv.getFloat32(4 * k, true);
    }
    return out;
  }
  const out = new Float32Array(n);
  // Write bit patterns through a Uint32 view so NaN payloads survive.
  const bits = new Uint32Array(out.buffer);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (entry.dtype === 'BF16') {
    for (let k = 0; k < n; k++) bits[k] = dv.getUint16(2 * k, true) << 16;
  } else {
    const table = halfBits();
    for (let k = 0; k < n; k++) bits[k] = table[dv.getUint16(2 * k, true)]!;
  }
  return out;
}

/**
 * Parse a whole safetensors file held in memory; `source` names it in errors. F32 tensors are
 * views into `bytes` where aligned. Every tensor must be F32, F16 or BF16.
 */
export function parseSafetensors(bytes: Uint8Array, source: string): { header: SafetensorsHeader; tensors: Map<string, WeightTensor> } {
  const header = parseSafetensorsHeader(bytes, bytes.length, source);
  for (const e of header.tensors.values()) checkLoadable(e, source);
  const tensors = new Map<string, WeightTensor>();
  for (const e of header.tensors.values()) {
    const data = decodeSafetensorsData(e, bytes.subarray(e.offset, e.offset + e.byteLength), source, true);
    tensors.set(e.name, { shape: e.shape.slice(), data });
  }
  return { header, tensors };
}

/** Read every tensor of the safetensors file at `path` as float32 (see `readSafetensorsTensors`). */
export async function loadSafetensors(path: string): Promise<Map<string, WeightTensor>> {
  return readSafetensorsTensors(await openSafetensors(path));
}

/**
 * Read tensors of `checkpoint` as float32: those in `names` (every name must be in the
 * checkpoint), else all of them. All headers are already validated and the requested dtypes are
 * checked before any data is read; then each file is read tensor by tensor.
 */
export async function readSafetensorsTensors(checkpoint: SafetensorsCheckpoint, names?: Iterable<string>): Promise<Map<string, WeightTensor>> {
  const wanted = names === undefined ? [...checkpoint.tensors.keys()] : [...names];
  const byFile = new Map<SafetensorsHeader, SafetensorsEntry[]>();
  for (const name of wanted) {
    const h = checkpoint.tensors.get(name);
    if (h === undefined) throw new ModelFormatError(checkpoint.source, `missing tensor ${name}`);
    const e = h.tensors.get(name)!;
    checkLoadable(e, h.path);
    let list = byFile.get(h);
    if (list === undefined) byFile.set(h, (list = []));
    list.push(e);
  }
  const out = new Map<string, WeightTensor>();
  for (const [h, entries] of byFile) {
    const fh = await openFile(h.path);
    try {
      const size = (await fh.stat()).size;
      if (size !== h.fileSize) throw new ModelFormatError(h.path, `the file changed size while loading (${h.fileSize} -> ${size} bytes)`);
      entries.sort((a, b) => a.offset - b.offset);
      for (const e of entries) {
        if (e.dtype === 'F32' && LITTLE_ENDIAN) {
          // Read straight into the result: no intermediate copy.
          const data = new Float32Array(e.byteLength / 4);
          await readFully(fh, new Uint8Array(data.buffer), e.offset, h.path, e.name);
          out.set(e.name, { shape: e.shape.slice(), data });
        } else {
          const raw = new Uint8Array(e.byteLength);
          await readFully(fh, raw, e.offset, h.path, e.name);
          out.set(e.name, { shape: e.shape.slice(), data: decodeSafetensorsData(e, raw, h.path) });
        }
      }
    } finally {
      await fh.close();
    }
  }
  // In the order asked for.
  return new Map(wanted.map((n) => [n, out.get(n)!]));
}

// ---------------------------------------------------------------------------------------------
// Checkpoints (single file or sharded)

/**
 * Open a checkpoint and validate every header: `path` is a `.safetensors` file, a
 * `*.safetensors.index.json` file, or a folder holding `model.safetensors.index.json` (preferred)
 * or `model.safetensors`. No tensor data is read.
 */
export async function openSafetensors(path: string): Promise<SafetensorsCheckpoint> {
  let target = path;
  if ((await statOrNull(path))?.isDirectory()) {
    const index = join(path, SAFETENSORS_INDEX);
    const single = join(path, SAFETENSORS_SINGLE);
    if (await statOrNull(index)) target = index;
    else if (await statOrNull(single)) target = single;
    else throw new ModelFormatError(path, `no ${SAFETENSORS_INDEX} or ${SAFETENSORS_SINGLE} in this folder`);
  }
  if (target.endsWith('.json')) return openIndex(target);
  const header = await readSafetensorsHeader(target);
  return { source: target, files: [header], tensors: new Map([...header.tensors.keys()].map((n) => [n, header])) };
}

/** The `weight_map` of a sharded checkpoint's index: tensor name -> absolute shard path. */
export async function readSafetensorsIndex(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new ModelFormatError(path, `cannot read the index: ${(e as Error).message}`, { cause: e });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new ModelFormatError(path, `not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  if (!isPlainObject(raw) || !isPlainObject(raw.weight_map)) throw new ModelFormatError(path, 'expected a JSON object with a "weight_map" object');
  const dir = resolve(dirname(path));
  const map = new Map<string, string>();
  for (const [name, file] of Object.entries(raw.weight_map)) {
    if (typeof file !== 'string' || file === '') throw new ModelFormatError(path, `weight_map.${name} must be a file name but is ${show(file)}`);
    const abs = resolve(dir, file);
    if (isAbsolute(file) || !abs.startsWith(dir + sep)) {
      throw new ModelFormatError(path, `weight_map.${name} names ${JSON.stringify(file)}, outside the checkpoint's folder`);
    }
    map.set(name, abs);
  }
  if (map.size === 0) throw new ModelFormatError(path, 'weight_map is empty');
  return map;
}

async function openIndex(path: string): Promise<SafetensorsCheckpoint> {
  const map = await readSafetensorsIndex(path);
  const shards = [...new Set(map.values())];
  const headers = new Map<string, SafetensorsHeader>();
  for (const shard of shards) {
    if ((await statOrNull(shard)) === null) throw new ModelFormatError(shard, `not found (listed as a shard in ${path})`);
    headers.set(shard, await readSafetensorsHeader(shard));
  }
  const tensors = new Map<string, SafetensorsHeader>();
  for (const [name, shard] of map) {
    const h = headers.get(shard)!;
    if (!h.tensors.has(name)) throw new ModelFormatError(shard, `missing tensor ${name}, which ${path} places in this shard`);
    tensors.set(name, h);
  }
  for (const h of headers.values()) {
    for (const name of h.tensors.keys()) {
      const listed = map.get(name);
      if (listed === undefined) throw new ModelFormatError(h.path, `tensor ${name} is not listed in ${path}`);
      if (listed !== h.path) throw new ModelFormatError(h.path, `tensor ${name} appears here and in ${listed} (where ${path} places it)`);
    }
  }
  return { source: path, files: [...headers.values()], tensors };
}

// ---------------------------------------------------------------------------------------------
// Helpers

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function checkLoadable(e: SafetensorsEntry, source: string): void {
  if (!LOADABLE.includes(e.dtype)) {
    throw new ModelFormatError(source, `tensor ${e.name} has dtype ${e.dtype}, which kvlab does not load (supported: ${LOADABLE.join(', ')})`);
  }
}

async function readHeader(fh: FileHandle, path: string): Promise<SafetensorsHeader> {
  const fileSize = (await fh.stat()).size;
  const first = new Uint8Array(8);
  if (fileSize >= 8) await readFully(fh, first, 0, path, 'the header length');
  const n = headerLength(first, fileSize, path);
  const json = new Uint8Array(n);
  await readFully(fh, json, 8, path, 'the header');
  return parseHeaderJson(json, fileSize, path);
}

/** Fill `into` from `position`, looping over short reads. */
async function readFully(fh: FileHandle, into: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let done = 0;
  while (done < into.length) {
    const len = Math.min(READ_CHUNK, into.length - done);
    const { bytesRead } = await fh.read(into, done, len, position + done);
    if (bytesRead === 0) {
      throw new ModelFormatError(path, `truncated: reading ${what} stopped at byte ${position + done} of the expected ${position + into.length}`);
    }
    done += bytesRead;
  }
}

async function openFile(path: string): Promise<FileHandle> {
  try {
    return await open(path, 'r');
  } catch (e) {
    throw new ModelFormatError(path, `cannot open: ${(e as Error).message}`, { cause: e });
  }
}

let HALF_BITS: Uint32Array | null = null;

/** f16 bit pattern -> the float32 bit pattern of the same value, for all 65536 patterns. */
function halfBits(): Uint32Array {
  if (HALF_BITS !== null) return HALF_BITS;
  const t = new Uint32Array(65536);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    if (e === 31) t[h] = sign | 0x7f800000 | (m << 13); // infinities; NaNs keep their payload
    else if (e !== 0) t[h] = sign | ((e - 15 + 127) << 23) | (m << 13);
    else {
      f[0] = m * 2 ** -24; // zero or subnormal: exact in float32
      t[h] = sign | u[0]!;
    }
  }
  HALF_BITS = t;
  return t;
}
