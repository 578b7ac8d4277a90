/**
 * Redis tier through node-redis (v5). A value larger than `partBytes` is split into parts stored
 * under a fresh version id; a small manifest (JSON: version, part count, total bytes, CRC-32 of the
 * whole) is written last, so a reader never sees a manifest whose parts were not all written. Of
 * concurrent writers of one key the last manifest wins whole; the versions it replaced are deleted
 * (a reader caught between sees missing parts and reads a miss, never a mix of two writers). Every command has a timeout; the client
 * reconnects with exponential backoff, and while it is disconnected commands fail at once
 * (TierUnavailableError) instead of queueing, so the store can serve from its local tiers.
 * LRU with a byte budget: a sorted set of last use per key and a byte counter, kept beside the values.
 */
import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { createClient } from 'redis';
import type { DeviceSpec } from '../runtime/device.js';
import { ArgumentError, NotFoundError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import {
  checkEntry, checkSection, entryFromPayload, layerCount, layerTensor, parseHeader, PREAMBLE_BYTES, readPreamble, serializeEntry,
  type Entry, type ParsedHeader,
} from './entry.js';
import { CorruptEntryError, TierUnavailableError } from './errors.js';
import { PartReader } from './part-reader.js';
import { TierCounters, type EntryHandle, type Tier, type TierStats } from './tier.js';

export interface RedisTierOptions {
  /** e.g. redis://127.0.0.1:6379 */
  url: string;
  budgetBytes: number;
  /** Key prefix, so several stores can share a server (default 'kvlab:'). */
  prefix?: string;
  /** Largest single value written (default 4 MiB). */
  partBytes?: number;
  /** Per-command timeout in ms (default 2000). */
  timeoutMs?: number;
  /** Connect timeout in ms (default 1000). */
  connectTimeoutMs?: number;
  /** Reconnect backoff: first delay and cap in ms (defaults 50 and 2000). */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  name?: string;
  onCorrupt?: (key: string, reason: string) => void;
}

interface Manifest { v: 1; version: string; parts: number; partBytes: number; totalBytes: number; crc: number }

type Client = ReturnType<typeof createClient>;
/** node-redis's reply type mapping that returns blob strings as Buffers (set on connect). */
type BlobAsBuffer = Record<number, typeof Buffer>;

export class RedisTier implements Tier {
  readonly name: string;
  readonly kind = 'redis' as const;
  readonly remote = true;
  readonly budgetBytes: number;
  private readonly counters = new TierCounters();
  private readonly prefix: string;
  private readonly partBytes: number;
  private readonly timeoutMs: number;
  private lastError: Error | null = null;
  private closed = false;
  private readonly onCorrupt?: (key: string, reason: string) => void;

  private constructor(private readonly client: Client, private readonly blobAsBuffer: BlobAsBuffer, options: RedisTierOptions) {
    this.name = options.name ?? 'redis';
    this.budgetBytes = options.budgetBytes;
    this.prefix = options.prefix ?? 'kvlab:';
    this.partBytes = options.partBytes ?? 4 << 20;
    this.timeoutMs = options.timeoutMs ?? 2000;
    this.onCorrupt = options.onCorrupt;
  }

  /** Connects (rejecting with TierUnavailableError if the first connection fails). */
  static async connect(options: RedisTierOptions): Promise<RedisTier> {
    if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url))
      throw new ArgumentError(`Expected a redis:// URL but received ${JSON.stringify(options.url)}`);
    if (!(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes > 0))
      throw new ArgumentError(`Expected budgetBytes to be an integer > 0 but received ${options.budgetBytes}`);
    if (options.partBytes !== undefined && !(Number.isSafeInteger(options.partBytes) && options.partBytes >= 1024))
      throw new ArgumentError(`Expected partBytes to be an integer >= 1024 but received ${options.partBytes}`);
    const min = options.reconnectMinMs ?? 50, max = options.reconnectMaxMs ?? 2000;
    let connected = false;
    // node-redis is loaded when a Redis tier is first made, so kvlab imports without it installed.
    const { createClient, RESP_TYPES } = await import('redis');
    const client = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: options.connectTimeoutMs ?? 1000,
        // Before the first connection: give up (the caller decides); after: retry forever with backoff.
        reconnectStrategy: (retries: number) => (connected ? Math.min(max, min * 2 ** Math.min(retries, 16)) : false),
      },
    });
    const tier = new RedisTier(client, { [RESP_TYPES.BLOB_STRING]: Buffer }, options);
    client.on('error', (e: Error) => { tier.lastError = e; });
    try {
      await client.connect();
    } catch (e) {
      try { client.destroy(); } catch { /* already closed by the failed connect */ }
      throw new TierUnavailableError(`redis at ${options.url} is not reachable: ${(e as Error).message}`, { cause: e });
    }
    connected = true;
    return tier;
  }

  /** Whether the client holds a live connection now. */
  get ready(): boolean {
    return this.client.isReady;
  }

  /** One round trip (the store's health probe). */
  async ping(): Promise<void> {
    await this.cmd(['PING']);
  }

  async put(key: string, entry: Entry): Promise<void> {
    checkEntry(entry);
    await this.putSerialized(key, serializeEntry(entry));
  }

  async putSerialized(key: string, bytes: Uint8Array): Promise<void> {
    checkKey(key);
    const version = randomBytes(8).toString('hex');
    const parts = Math.max(1, Math.ceil(bytes.byteLength / this.partBytes));
    const m: Manifest = { v: 1, version, parts, partBytes: this.partBytes, totalBytes: bytes.byteLength, crc: crc32(bytes) };
    let committed = false;
    try {
      for (let i = 0; i < parts; i++) {
        const k = this.partKey(key, version, i);
        const b = bytes.subarray(i * this.partBytes, Math.min(bytes.byteLength, (i + 1) * this.partBytes));
        await this.cmd(['SET', k, Buffer.from(b.buffer, b.byteOffset, b.byteLength)]);
      }
      // The manifest switches readers to the new version in one step; SET ... GET returns the one it
      // replaced, whose parts are then deleted (a reader still on them sees a miss, never a mix).
      const old = (await this.cmd(['SET', this.manifestKey(key), JSON.stringify(m), 'GET'])) as Buffer | null;
      committed = true;
      await this.cmd(['ZADD', this.lruKey(), String(Date.now()), key]);
      await this.cmd(['HSET', this.sizesKey(), key, String(bytes.byteLength)]);
      const prev = old ? parseManifest(old) : undefined;
      await this.cmd(['INCRBY', this.bytesKey(), String(bytes.byteLength - (prev?.totalBytes ?? 0))]);
      if (prev) await this.cmd(['DEL', ...Array.from({ length: prev.parts }, (_, i) => this.partKey(key, prev.version, i))]);
    } catch (e) {
      // Best effort: parts of an unfinished version (some may still land after a timeout) are deleted;
      // without a manifest no reader ever sees them.
      if (!committed && this.client.isReady)
        await this.cmd(['DEL', ...Array.from({ length: parts }, (_, i) => this.partKey(key, version, i))]).catch(() => {});
      throw e;
    }
    await this.evict(key);
  }

  /**
   * Opens an entry for layer-wise reading: the parts stream in, a few at a time, in order; the header
   * is parsed as soon as its bytes are there, and layer l is returned (after its own checksum) as
   * soon as its bytes are, while later layers are still arriving. `entry()` also checks the CRC of the
   * whole value from the manifest.
   */
  async open(key: string): Promise<EntryHandle | undefined> {
    checkKey(key);
    const m = await this.manifest(key);
    if (!m) {
      this.counters.misses++;
      return undefined;
    }
    const what = `redis entry ${key}`;
    const reader = new PartReader(m.totalBytes, m.partBytes, m.parts,
      (i) => this.cmd(['GET', this.partKey(key, m.version, i)]) as Promise<Buffer | null>,
      (i, got) => (got === null ? new NotFoundError(`${what}: part ${i} is gone (replaced or evicted while being read)`)
        : new CorruptEntryError(`${what}: part ${i} has ${got.byteLength} bytes, not what the manifest says`)));
    let head: ParsedHeader;
    try {
      await reader.waitFor(Math.min(m.totalBytes, PREAMBLE_BYTES));
      const len = readPreamble(reader.bytes.subarray(0, Math.min(m.totalBytes, PREAMBLE_BYTES)), what);
      if (PREAMBLE_BYTES + len + 4 > m.totalBytes) throw new CorruptEntryError(`${what}: header longer than the value`);
      await reader.waitFor(PREAMBLE_BYTES + len + 4);
      head = parseHeader(reader.bytes.subarray(0, PREAMBLE_BYTES + len + 4), what);
      if (head.totalBytes !== m.totalBytes) throw new CorruptEntryError(`${what}: header and manifest disagree on the size`);
    } catch (e) {
      reader.cancel();
      if (e instanceof NotFoundError) {
        this.counters.misses++;
        return undefined;
      }
      if (!(e instanceof CorruptEntryError)) throw e;
      await this.drop(key, e.message);
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    await this.cmd(['ZADD', this.lruKey(), String(Date.now()), key]).catch(() => {});
    const h = head;
    const base = h.totalBytes - h.info.payloadBytes;
    // Waits for bytes [0, end); a corrupt part or section drops the entry (reported) and throws.
    const arrive = async (end: number, check?: () => void): Promise<void> => {
      try {
        await reader.waitFor(end);
        check?.();
      } catch (e) {
        if (e instanceof CorruptEntryError) await this.drop(key, e.message);
        throw e;
      }
    };
    const section = async (i: number): Promise<Uint8Array> => {
      const s = h.sections[i]!;
      const d = reader.bytes.subarray(base + s.offset, base + s.offset + s.length);
      await arrive(base + s.offset + s.length, () => checkSection(d, s, what));
      return d;
    };
    return {
      info: h.info,
      async layer(l: number, device: DeviceSpec): Promise<Tensor> {
        if (h.info.kind !== 'raw') throw new ArgumentError(`entry ${key} is a bitstream; decode it to read layers`);
        const L = layerCount(h.info);
        if (!Number.isInteger(l) || l < 0 || l >= L) throw new ArgumentError(`layer ${l} out of range [0, ${L})`);
        return layerTensor(h.info, await section(l), device);
      },
      entry: async (device: DeviceSpec): Promise<Entry> => {
        await arrive(m.totalBytes, () => {
          if (crc32(reader.bytes) !== m.crc) throw new CorruptEntryError(`${what}: the value fails the manifest's CRC`);
        });
        for (let i = 0; i < h.sections.length; i++) await section(i);
        return entryFromPayload(h.info, reader.bytes.subarray(base), device);
      },
      release(): void {
        reader.cancel();
      },
    };
  }

  async has(key: string): Promise<boolean> {
    checkKey(key);
    return (await this.cmd(['EXISTS', this.manifestKey(key)])) === 1;
  }

  async delete(key: string): Promise<boolean> {
    checkKey(key);
    const m = await this.manifest(key);
    if (!m) return false;
    await this.remove(key, m);
    return true;
  }

  /** Deletes every key of this tier's prefix (tests and benchmarks). */
  async clear(): Promise<void> {
    let cursor = '0';
    do {
      const [next, keys] = (await this.cmd(['SCAN', cursor, 'MATCH', `${this.prefix}*`, 'COUNT', '1000'])) as [Buffer, Buffer[]];
      cursor = next.toString();
      if (keys.length) await this.cmd(['DEL', ...keys.map((k) => k.toString())]);
    } while (cursor !== '0');
  }

  /** Bytes the tier believes it holds (the server-side counter). */
  async usedBytes(): Promise<number> {
    const v = (await this.cmd(['GET', this.bytesKey()])) as Buffer | null;
    return v ? Number(v.toString()) : 0;
  }

  stats(): TierStats {
    return { name: this.name, kind: this.kind, entries: -1, usedBytes: -1, budgetBytes: this.budgetBytes, ...this.counters };
  }

  get error(): Error | null {
    return this.lastError;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.isReady) await this.client.close().catch(() => this.client.destroy());
    else this.client.destroy();
  }

  private async manifest(key: string): Promise<Manifest | undefined> {
    const raw = (await this.cmd(['GET', this.manifestKey(key)])) as Buffer | null;
    if (!raw) return undefined;
    const m = parseManifest(raw);
    if (m) return m;
    await this.cmd(['DEL', this.manifestKey(key)]);
    this.counters.corruptDropped++;
    return undefined;
  }

  private async remove(key: string, m: Manifest): Promise<void> {
    const parts = Array.from({ length: m.parts }, (_, i) => this.partKey(key, m.version, i));
    const removed = await this.cmd(['DEL', this.manifestKey(key)]);
    await this.cmd(['DEL', ...parts]);
    await this.cmd(['ZREM', this.lruKey(), key]);
    if (removed === 1) {
      await this.cmd(['HDEL', this.sizesKey(), key]);
      await this.cmd(['DECRBY', this.bytesKey(), String(m.totalBytes)]);
    }
  }

  private async drop(key: string, reason: string): Promise<void> {
    this.counters.corruptDropped++;
    const m = await this.manifest(key).catch(() => undefined);
    if (m) await this.remove(key, m).catch(() => {});
    this.onCorrupt?.(key, reason);
  }

  /** Removes least recently used keys (never `keep`) while the byte counter exceeds the budget. */
  private async evict(keep: string): Promise<void> {
    for (let guard = 0; guard < 10_000 && (await this.usedBytes()) > this.budgetBytes; guard++) {
      const oldest = (await this.cmd(['ZRANGE', this.lruKey(), '0', '1'])) as Buffer[];
      const victim = oldest.map((b) => b.toString()).find((k) => k !== keep);
      if (!victim) return;
      const m = await this.manifest(victim);
      if (m) await this.remove(victim, m);
      else await this.cmd(['ZREM', this.lruKey(), victim]);
      this.counters.evictions++;
    }
  }

  /**
   * One command with the tier's timeout; unreachable or timed out -> TierUnavailableError. node-redis'
   * own timeout only covers commands not yet written, so a command the server sits on (a stalled or
   * overloaded server) is timed here; its late reply is still read and dropped, keeping the protocol
   * in step.
   */
  private async cmd(args: (string | Buffer)[]): Promise<unknown> {
    if (!this.client.isReady) throw new TierUnavailableError(`${this.name}: not connected${this.lastError ? ` (${this.lastError.message})` : ''}`);
    const reply = this.client.sendCommand(args, { timeout: this.timeoutMs, typeMapping: this.blobAsBuffer });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply in ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([reply, late]);
    } catch (e) {
      reply.catch(() => {});
      throw new TierUnavailableError(`${this.name}: ${args[0]} failed: ${(e as Error).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  private manifestKey(key: string): string { return `${this.prefix}m:${key}`; }
  private partKey(key: string, version: string, i: number): string { return `${this.prefix}p:${key}:${version}:${i}`; }
  private lruKey(): string { return `${this.prefix}lru`; }
  private sizesKey(): string { return `${this.prefix}sizes`; }
  private bytesKey(): string { return `${this.prefix}bytes`; }
}

function parseManifest(raw: Buffer): Manifest | undefined {
  try {
    const m = JSON.parse(raw.toString('utf8')) as Manifest;
    if (m.v === 1 && Number.isSafeInteger(m.parts) && m.parts >= 1 && Number.isSafeInteger(m.totalBytes) && /^[0-9a-f]+$/.test(m.version)) return m;
  } catch { /* not a manifest */ }
  return undefined;
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || !/^[A-Za-z0-9_-]{1,200}$/.test(key))
    throw new ArgumentError(`store keys are 1-200 characters of [A-Za-z0-9_-]; received ${JSON.stringify(key)}`);
}
