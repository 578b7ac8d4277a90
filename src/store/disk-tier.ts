/**
 * Local disk tier: one file per entry, `<key>.kvse`, written crash-safely: to a unique temp file,
 * fsync'd, then renamed over the final name (rename is atomic, so a reader sees the old entry or the
 * new one, whole, and concurrent writers of one key leave exactly one winner). Every read checks the
 * header and the section checksums; a short or corrupt file is deleted, counted and reported through
 * `onCorrupt`, and reads as a miss. A full disk (ENOSPC/EDQUOT) is a StorageFullError after the temp
 * file is removed; entries already stored are untouched. `io` is the hook tests use to inject faults.
 */
import { randomBytes } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import { join } from 'node:path';
import type { DeviceSpec } from '../runtime/device.js';
import { ArgumentError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  checkEntry, checkSection, entryFromPayload, layerCount, layerTensor, parseHeader, PREAMBLE_BYTES, readPreamble,
  serializeEntry, type Entry, type ParsedHeader,
} from './entry.js';
import { CorruptEntryError, StorageFullError } from './errors.js';
import { ByteLru } from './lru.js';
import { TierCounters, type EntryHandle, type Tier, type TierStats } from './tier.js';

/** The file operations the tier uses; replace any of them to inject faults (ENOSPC, short writes). */
export interface DiskIO {
  open(path: string, flags: string): Promise<fsp.FileHandle>;
  write(fh: fsp.FileHandle, data: Uint8Array, position: number): Promise<number>;
  fsync(fh: fsp.FileHandle): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

const NODE_IO: DiskIO = {
  open: (p, f) => fsp.open(p, f),
  write: async (fh, data, pos) => (await fh.write(data, 0, data.byteLength, pos)).bytesWritten,
  fsync: (fh) => fh.sync(),
  rename: (a, b) => fsp.rename(a, b),
  unlink: (p) => fsp.unlink(p),
};

export interface DiskTierOptions {
  dir: string;
  budgetBytes: number;
  name?: string;
  io?: Partial<DiskIO>;
  /** Called when an entry is dropped as corrupt or partial (key, reason). */
  onCorrupt?: (key: string, reason: string) => void;
  /** Temp files older than this (left by killed writers) are removed when the tier opens. */
  staleTempMs?: number;
}

const EXT = '.kvse';
const KEY_RE = /^[A-Za-z0-9_-]{1,200}$/;

export class DiskTier implements Tier {
  readonly name: string;
  readonly kind = 'disk' as const;
  readonly remote = false;
  readonly dir: string;
  private readonly lru: ByteLru<true>;
  private readonly counters = new TierCounters();
  private readonly io: DiskIO;
  private readonly onCorrupt?: (key: string, reason: string) => void;

  private constructor(options: DiskTierOptions) {
    this.dir = options.dir;
    this.name = options.name ?? 'disk';
    this.lru = new ByteLru(options.budgetBytes);
    this.io = { ...NODE_IO, ...options.io };
    this.onCorrupt = options.onCorrupt;
  }

  /** Opens (creating) the folder and indexes the entries already there, oldest first. */
  static async open(options: DiskTierOptions): Promise<DiskTier> {
    if (typeof options.dir !== 'string' || !options.dir) throw new ArgumentError('the disk tier needs a folder (dir)');
    if (!(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes >= 0))
      throw new ArgumentError(`Expected budgetBytes to be an integer >= 0 but received ${options.budgetBytes}`);
    await fsp.mkdir(options.dir, { recursive: true });
    const t = new DiskTier(options);
    const stale = options.staleTempMs ?? 60_000;
    const found: { key: string; size: number; mtime: number }[] = [];
    for (const name of await fsp.readdir(options.dir)) {
      const p = join(options.dir, name);
      const st = await fsp.stat(p).catch(() => null);
      if (!st?.isFile()) continue;
      if (name.endsWith('.tmp')) {
        if (Date.now() - st.mtimeMs > stale) await fsp.unlink(p).catch(() => {});
      } else if (name.endsWith(EXT)) {
        found.push({ key: name.slice(0, -EXT.length), size: st.size, mtime: st.mtimeMs });
      }
    }
    found.sort((a, b) => a.mtime - b.mtime);
    for (const f of found) t.lru.set(f.key, true, f.size);
    return t;
  }

  private path(key: string): string {
    if (!KEY_RE.test(key)) throw new ArgumentError(`disk tier keys are 1-200 characters of [A-Za-z0-9_-]; received ${JSON.stringify(key)}`);
    return join(this.dir, key + EXT);
  }

  async put(key: string, entry: Entry): Promise<void> {
    checkEntry(entry);
    await this.putSerialized(key, serializeEntry(entry));
  }

  async putSerialized(key: string, bytes: Uint8Array): Promise<void> {
    const final = this.path(key);
    if (bytes.byteLength > this.lru.budgetBytes)
      throw new StorageFullError(`${this.name} tier: an entry of ${bytes.byteLength} bytes exceeds the budget of ${this.lru.budgetBytes}`);
    const tmp = join(this.dir, `.${key}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
    let fh: fsp.FileHandle | null = null;
    try {
      fh = await this.io.open(tmp, 'wx');
      let at = 0;
      while (at < bytes.byteLength) {
        const n = await this.io.write(fh, bytes.subarray(at, Math.min(bytes.byteLength, at + (8 << 20))), at);
        if (n <= 0) throw new Error(`short write to ${tmp}`);
        at += n;
      }
      await this.io.fsync(fh);
      await fh.close();
      fh = null;
      await this.io.rename(tmp, final);
      await syncDir(this.dir);
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      await this.io.unlink(tmp).catch(() => {});
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC' || code === 'EDQUOT')
        throw new StorageFullError(`${this.name} tier: no space left writing ${bytes.byteLength} bytes under ${this.dir}`, { cause: e });
      throw e;
    }
    this.lru.set(key, true, bytes.byteLength);
    for (const [k] of this.lru.evictFor(0, key)) {
      this.counters.evictions++;
      await this.io.unlink(join(this.dir, k + EXT)).catch(() => {});
    }
  }

  async open(key: string): Promise<EntryHandle | undefined> {
    const p = this.path(key);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(p, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      this.lru.delete(key);
      this.counters.misses++;
      return undefined;
    }
    let head: ParsedHeader;
    try {
      const size = (await fh.stat()).size;
      const pre = await readAt(fh, 0, PREAMBLE_BYTES);
      const len = readPreamble(pre, `${p}`);
      head = parseHeader(await readAt(fh, 0, PREAMBLE_BYTES + len + 4), p);
      if (size !== head.totalBytes) throw new CorruptEntryError(`${p}: ${size} bytes but the header says ${head.totalBytes} (partial write)`);
    } catch (e) {
      await fh.close().catch(() => {});
      if (e instanceof CorruptEntryError) {
        await this.drop(key, e.message);
        this.counters.misses++;
        return undefined;
      }
      throw e;
    }
    this.counters.hits++;
    this.lru.use(key);
    const base = head.totalBytes - head.info.payloadBytes;
    const tier = this;
    let released = false;
    // Reads one section and checks it; a bad one drops the entry and throws (never returns the bytes).
    const section = async (i: number): Promise<Uint8Array> => {
      const s = head.sections[i]!;
      const data = await readAt(fh, base + s.offset, s.length);
      try {
        checkSection(data, s, p);
      } catch (e) {
        await tier.drop(key, (e as Error).message);
        throw e;
      }
      return data;
    };
    return {
      info: head.info,
      async layer(l: number, device: DeviceSpec): Promise<Tensor> {
        if (head.info.kind !== 'raw') throw new ArgumentError(`entry ${key} is a bitstream; decode it to read layers`);
        const L = layerCount(head.info);
        if (!Number.isInteger(l) || l < 0 || l >= L) throw new ArgumentError(`layer ${l} out of range [0, ${L})`);
        return layerTensor(head.info, await section(l), device);
      },
      async entry(device: DeviceSpec): Promise<Entry> {
        const parts: Uint8Array[] = [];
        for (let i = 0; i < head.sections.length; i++) parts.push(await section(i));
        return entryFromPayload(head.info, parts.length === 1 ? parts[0]! : Buffer.concat(parts), device);
      },
      release(): void {
        if (released) return;
        released = true;
        void fh.close().catch(() => {});
      },
    };
  }

  async has(key: string): Promise<boolean> {
    return fsp.access(this.path(key)).then(() => true, () => false);
  }

  async delete(key: string): Promise<boolean> {
    this.lru.delete(key);
    return this.io.unlink(this.path(key)).then(() => true, () => false);
  }

  stats(): TierStats {
    return { name: this.name, kind: this.kind, entries: this.lru.size, usedBytes: this.lru.usedBytes, budgetBytes: this.lru.budgetBytes, ...this.counters };
  }

  async close(): Promise<void> {}

  private async drop(key: string, reason: string): Promise<void> {
    this.counters.corruptDropped++;
    this.lru.delete(key);
    await this.io.unlink(this.path(key)).catch(() => {});
    this.onCorrupt?.(key, reason);
  }
}

/** fsync of the folder, so the rename itself survives a power loss (best effort: not every filesystem allows it). */
async function syncDir(dir: string): Promise<void> {
  const d = await fsp.open(dir, 'r').catch(() => null);
  if (!d) return;
  await d.sync().catch(() => {});
  await d.close().catch(() => {});
}

async function readAt(fh: fsp.FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await fh.read(buf, at, length - at, position + at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return at === length ? buf : buf.subarray(0, at);
}
