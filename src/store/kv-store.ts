/**
 * KVStore: a stack of tiers, fastest first (e.g. GPU, CPU, disk, Redis), addressed by chunk keys.
 *
 * - Reads try each tier in order; a hit below the top is promoted (copied into the faster tiers).
 * - Writes: 'write-through' stores into every tier at once; 'write-back' stores into the first tier
 *   and writes an entry down when the LRU evicts it or on flush().
 * - A remote tier (Redis) that fails or times out never fails a read or a write: the store serves
 *   from its local tiers, marks itself degraded (status()), keeps the writes Redis missed in a queue,
 *   and retries with exponential backoff until the tier answers; then it replays the queue.
 * - Local failures are typed: a full disk is a StorageFullError (nothing half-written is left behind).
 *
 * @example
 *   const store = new KVStore({ tiers: [new MemoryTier({ kind: 'gpu', budgetBytes: 8 << 30 }), await DiskTier.open({ dir, budgetBytes: 100 << 30 })] });
 *   await store.put(key, { kind: 'raw', kv, positions, fingerprint });
 *   for await (const layer of store.loadLayers(key, 'cuda:0')) { ...; layer.dispose(); }
 */
import type { KVCodec } from '../cachegen/codec.js';
import { Device, type DeviceSpec } from '../runtime/device.js';
import { ArgumentError, NotFoundError } from '../runtime/errors.js';
import type { Tensor } from '../runtime/tensor.js';
import { checkEntry, disposeEntry, layerCount, serializeEntry, type Entry, type EntryInfo } from './entry.js';
import { StorageFullError, TierUnavailableError } from './errors.js';
import type { EntryHandle, Tier, TierStats } from './tier.js';

export type WritePolicy = 'write-through' | 'write-back';

export interface KVStoreOptions {
  /** Fastest first. */
  tiers: Tier[];
  writePolicy?: WritePolicy;
  /** Copy hits into the faster tiers (default true). */
  promote?: boolean;
  /** Codecs that can decode bitstream entries for loadLayers/layerSource, by name. */
  codecs?: readonly KVCodec[];
  /** Backoff of remote retries: first delay and cap in ms (defaults 100 and 5000). */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** Called whenever the degraded status changes. */
  onStatus?: (status: StoreStatus) => void;
}

export interface RemoteStatus {
  readonly tier: string;
  readonly healthy: boolean;
  readonly lastError: string | null;
  /** Writes the tier missed, queued for replay. */
  readonly pendingWrites: number;
  readonly pendingBytes: number;
  readonly retries: number;
}

export interface StoreStatus {
  /** True while any remote tier is failing (the store serves from its local tiers meanwhile). */
  readonly degraded: boolean;
  readonly remotes: readonly RemoteStatus[];
  readonly tiers: readonly TierStats[];
}

/** What loadLayers/layerSource hand to a consumer such as CacheBlend (structurally its LayerSource). */
export interface StoreLayerSource {
  readonly layers: number;
  readonly info: EntryInfo;
  /** Layer l as [2, n, kvHeads, headDim] on the source's device; the caller disposes it. */
  load(layer: number): Promise<Tensor>;
  close(): void;
}

class RemoteState {
  healthy = true;
  lastError: string | null = null;
  retries = 0;
  readonly pending = new Map<string, Uint8Array>();
  timer: NodeJS.Timeout | null = null;
  delay: number;
  constructor(readonly tier: Tier, minMs: number) { this.delay = minMs; }
  get pendingBytes(): number {
    let n = 0;
    for (const b of this.pending.values()) n += b.byteLength;
    return n;
  }
}

export class KVStore {
  readonly tiers: readonly Tier[];
  readonly writePolicy: WritePolicy;
  private readonly promoteHits: boolean;
  private readonly codecs = new Map<string, KVCodec>();
  private readonly remotes = new Map<Tier, RemoteState>();
  private readonly dirty = new Set<string>();
  private readonly inflight = new Set<Promise<void>>();
  /** Per-key queue: puts and deletes of one key run one after another, so every tier ends with the same winner. */
  private readonly keyLocks = new Map<string, Promise<void>>();
  private readonly retryMin: number;
  private readonly retryMax: number;
  private readonly onStatus?: (s: StoreStatus) => void;
  private closed = false;

  constructor(options: KVStoreOptions) {
    if (!Array.isArray(options.tiers) || options.tiers.length === 0) throw new ArgumentError('a KVStore needs at least one tier');
    const policy = options.writePolicy ?? 'write-through';
    if (policy !== 'write-through' && policy !== 'write-back') throw new ArgumentError(`Expected writePolicy 'write-through' or 'write-back' but received ${JSON.stringify(policy)}`);
    this.tiers = [...options.tiers];
    this.writePolicy = policy;
    this.promoteHits = options.promote ?? true;
    this.retryMin = options.retryMinMs ?? 100;
    this.retryMax = options.retryMaxMs ?? 5000;
    this.onStatus = options.onStatus;
    for (const c of options.codecs ?? []) this.codecs.set(c.name, c);
    for (const t of this.tiers) if (t.remote) this.remotes.set(t, new RemoteState(t, this.retryMin));
    if (policy === 'write-back') {
      this.tiers.forEach((t, i) => {
        if ('onEvict' in t) t.onEvict = (key, entry) => this.demote(key, entry, i + 1);
      });
    }
  }

  /**
   * Stores `entry` under `key` (the caller keeps ownership of what it passed). Concurrent puts of one
   * key are applied in call order, so the last one wins in every tier.
   */
  async put(key: string, entry: Entry): Promise<void> {
    checkEntry(entry);
    return this.withKey(key, () => this.putNow(key, entry));
  }

  private withKey(key: string, fn: () => Promise<void>): Promise<void> {
    const prev = this.keyLocks.get(key) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    const tail = next.catch(() => {});
    this.keyLocks.set(key, tail);
    void tail.then(() => { if (this.keyLocks.get(key) === tail) this.keyLocks.delete(key); });
    return next;
  }

  private async putNow(key: string, entry: Entry): Promise<void> {
    if (this.writePolicy === 'write-back') {
      for (let i = 0; i < this.tiers.length; i++) {
        const t = this.tiers[i]!;
        if (t.remote) return this.writeRemote(t, key, serializeEntry(entry));
        try {
          await t.put(key, entry);
          if (i < this.tiers.length - 1) this.dirty.add(key);
          return;
        } catch (e) {
          if (!(e instanceof StorageFullError) || i === this.tiers.length - 1) throw e;
        }
      }
      return;
    }
    let bytes: Uint8Array | undefined;
    const serialized = () => (bytes ??= serializeEntry(entry));
    let stored = 0;
    let lastFull: unknown = null;
    for (const t of this.tiers) {
      if (t.remote) {
        await this.writeRemote(t, key, serialized());
        stored++;
        continue;
      }
      try {
        if (t.kind === 'disk') await t.putSerialized(key, serialized());
        else await t.put(key, entry);
        stored++;
      } catch (e) {
        // A memory tier too small for this entry just does not cache it; a full disk is the caller's to know.
        if (e instanceof StorageFullError && t.kind !== 'disk') { lastFull = e; continue; }
        throw e;
      }
    }
    if (stored === 0 && lastFull) throw lastFull;
  }

  /** The entry, from the fastest tier holding it (promoted upwards), or undefined. */
  async get(key: string, device: DeviceSpec = 'cpu'): Promise<Entry | undefined> {
    const found = await this.find(key);
    if (!found) return undefined;
    const { handle, index } = found;
    try {
      const entry = await handle.entry(device);
      if (index > 0 && this.promoteHits) await this.promote(key, entry, index);
      return entry;
    } finally {
      handle.release();
    }
  }

  async has(key: string): Promise<boolean> {
    for (const t of this.tiers) {
      if (t.remote && !this.remotes.get(t)!.healthy) continue;
      try {
        if (await t.has(key)) return true;
      } catch (e) {
        if (!t.remote) throw e;
        this.markFailed(t, e);
      }
    }
    return false;
  }

  /** Removes `key` from every tier (remote tiers that are down are skipped). */
  async delete(key: string): Promise<void> {
    return this.withKey(key, () => this.deleteNow(key));
  }

  private async deleteNow(key: string): Promise<void> {
    this.dirty.delete(key);
    for (const t of this.tiers) {
      if (t.remote) {
        const r = this.remotes.get(t)!;
        r.pending.delete(key);
        if (!r.healthy) continue;
        await t.delete(key).catch((e) => this.markFailed(t, e));
      } else {
        await t.delete(key);
      }
    }
  }

  /**
   * Layer-wise loading: yields layer l's K and V ([2, n, kvHeads, headDim] on `device`) as soon as it
   * is read (and verified), so a consumer can compute on layer l while layer l+1 loads. Bitstream
   * entries are decoded with the codec named in the entry (given in `codecs`). The caller disposes
   * each layer. A missing key is a NotFoundError.
   */
  async *loadLayers(key: string, device: DeviceSpec = 'cpu'): AsyncGenerator<Tensor, void, undefined> {
    const src = await this.layerSource(key, device);
    try {
      for (let l = 0; l < src.layers; l++) yield await src.load(l);
    } finally {
      src.close();
    }
  }

  /**
   * A random-access source of one entry's layers (satisfies CacheBlend's LayerSource). Hits below
   * the top tier are promoted when the source is closed.
   */
  async layerSource(key: string, device: DeviceSpec = 'cpu'): Promise<StoreLayerSource> {
    const dev = Device.parse(device);
    const found = await this.find(key);
    if (!found) throw new NotFoundError(`no entry for key ${key} in tiers ${this.tiers.map((t) => t.name).join(', ')}`);
    const { handle, index } = found;
    const tier = this.tiers[index]!;
    const info = handle.info;
    let decoded: Tensor | null = null;
    let closed = false;
    const decode = async (): Promise<Tensor> => {
      if (decoded) return decoded;
      const e = await handle.entry('cpu');
      if (e.kind !== 'bitstream') throw new ArgumentError('internal: expected a bitstream');
      const codec = this.codecs.get(e.codec);
      if (!codec) throw new ArgumentError(`entry ${key} is a '${e.codec}' bitstream, but the store was given no codec of that name (codecs: [${[...this.codecs.keys()].join(', ')}])`);
      decoded = codec.decode(e.bytes, { device: dev }).kv;
      return decoded;
    };
    let layers = layerCount(info);
    if (info.kind === 'bitstream') layers = (await decode()).shape[0]!;
    return {
      layers,
      info,
      load: async (l: number): Promise<Tensor> => {
        if (closed) throw new ArgumentError(`layer source for ${key} is closed`);
        if (!Number.isInteger(l) || l < 0 || l >= layers) throw new ArgumentError(`layer ${l} out of range [0, ${layers})`);
        if (info.kind === 'raw') {
          return handle.layer(l, dev).catch((e: unknown) => {
            // A remote tier that stops answering mid-read: the store goes degraded; the caller sees the error.
            if (tier.remote && e instanceof TierUnavailableError) this.markFailed(tier, e);
            throw e;
          });
        }
        const kv = await decode();
        const [, , n = 0, h = 0, d = 0] = kv.shape;
        const view = kv.view([2, n, h, d], l * 2 * n * h * d);
        try { return view.to(dev); } finally { view.dispose(); }
      },
      close: () => {
        if (closed) return;
        closed = true;
        decoded?.dispose();
        if (index > 0 && this.promoteHits) {
          const p = handle.entry('cpu').then(async (e) => {
            try { await this.promote(key, e, index); } finally { disposeEntry(e); }
          }).catch(() => {}).finally(() => { handle.release(); this.inflight.delete(p); });
          this.inflight.add(p);
        } else {
          handle.release();
        }
      },
    };
  }

  /** Writes every dirty (write-back) entry down, waits for demotions, and replays queued remote writes. */
  async flush(): Promise<void> {
    for (const key of [...this.dirty]) {
      const h = await this.tiers[0]!.open(key);
      if (!h) { this.dirty.delete(key); continue; }
      try {
        const e = await h.entry('cpu');
        try { this.dirty.delete(key); await this.writeDown(key, serializeEntry(e), 1); } finally { disposeEntry(e); }
      } finally {
        h.release();
      }
    }
    while (this.inflight.size) await Promise.all([...this.inflight]);
    for (const r of this.remotes.values()) if (r.pending.size) await this.retry(r);
  }

  status(): StoreStatus {
    const remotes = [...this.remotes.values()].map((r) => ({
      tier: r.tier.name, healthy: r.healthy, lastError: r.lastError, pendingWrites: r.pending.size, pendingBytes: r.pendingBytes, retries: r.retries,
    }));
    return { degraded: remotes.some((r) => !r.healthy), remotes, tiers: this.tiers.map((t) => t.stats()) };
  }

  /** Stops retries and closes every tier. Writes still queued for a remote tier are reported lost in the return value. */
  async close(): Promise<{ unflushedRemoteWrites: number }> {
    this.closed = true;
    while (this.inflight.size) await Promise.all([...this.inflight]);
    let lost = 0;
    for (const r of this.remotes.values()) {
      if (r.timer) clearTimeout(r.timer);
      lost += r.pending.size;
    }
    for (const t of this.tiers) await t.close();
    return { unflushedRemoteWrites: lost };
  }

  private async find(key: string): Promise<{ handle: EntryHandle; index: number } | undefined> {
    for (let i = 0; i < this.tiers.length; i++) {
      const t = this.tiers[i]!;
      if (t.remote && !this.remotes.get(t)!.healthy) continue;
      try {
        const h = await t.open(key);
        if (h) return { handle: h, index: i };
      } catch (e) {
        if (!t.remote) throw e;
        this.markFailed(t, e);
      }
    }
    return undefined;
  }

  private async promote(key: string, entry: Entry, below: number): Promise<void> {
    for (let i = 0; i < below; i++) {
      const t = this.tiers[i]!;
      if (t.remote) continue;
      await t.put(key, entry).catch(() => {}); // a cache that cannot take it simply does not
    }
  }

  /** Write-back: an entry leaving tier i-1 goes to tier i (the entry is valid only during this call). */
  private demote(key: string, entry: Entry, next: number): void {
    if (!this.dirty.delete(key) || next >= this.tiers.length) return;
    const bytes = serializeEntry(entry);
    const p = this.writeDown(key, bytes, next).catch(() => { this.dirty.add(key); }).finally(() => this.inflight.delete(p));
    this.inflight.add(p);
  }

  private async writeDown(key: string, bytes: Uint8Array, from: number): Promise<void> {
    for (let i = from; i < this.tiers.length; i++) {
      const t = this.tiers[i]!;
      if (t.remote) await this.writeRemote(t, key, bytes);
      else await t.putSerialized(key, bytes).catch((e) => { if (!(e instanceof StorageFullError) || t.kind === 'disk') throw e; });
    }
  }

  private async writeRemote(t: Tier, key: string, bytes: Uint8Array): Promise<void> {
    const r = this.remotes.get(t)!;
    if (!r.healthy) {
      r.pending.set(key, bytes);
      return;
    }
    try {
      await t.putSerialized(key, bytes);
    } catch (e) {
      if (e instanceof ArgumentError) throw e;
      r.pending.set(key, bytes);
      this.markFailed(t, e);
    }
  }

  private markFailed(t: Tier, e: unknown): void {
    const r = this.remotes.get(t)!;
    r.lastError = (e as Error)?.message ?? String(e);
    if (!r.healthy) return;
    r.healthy = false;
    r.delay = this.retryMin;
    this.onStatus?.(this.status());
    this.schedule(r);
  }

  private schedule(r: RemoteState): void {
    if (this.closed || r.timer) return;
    r.timer = setTimeout(() => {
      r.timer = null;
      void this.retry(r);
    }, r.delay);
    r.timer.unref();
  }

  /** One retry: probe, replay the queue; healthy again only when the queue is empty. */
  private async retry(r: RemoteState): Promise<void> {
    r.retries++;
    try {
      if (r.tier.ping) await r.tier.ping();
      for (const [key, bytes] of [...r.pending]) {
        await r.tier.putSerialized(key, bytes);
        if (r.pending.get(key) === bytes) r.pending.delete(key);
      }
      if (!r.healthy) {
        r.healthy = true;
        r.delay = this.retryMin;
        this.onStatus?.(this.status());
      }
    } catch (e) {
      r.lastError = (e as Error)?.message ?? String(e);
      if (r.healthy) { r.healthy = false; this.onStatus?.(this.status()); }
      r.delay = Math.min(this.retryMax, r.delay * 2);
      this.schedule(r);
    }
  }
}
