/**
 * GPU and CPU tiers: entries resident as tensors on one device, LRU with a byte budget. Raw KV keeps
 * its dtype and layout, so a layer is a view copied straight to where it is needed; a bitstream is a
 * u8 tensor. The CPU tier uses pinned host memory when CUDA is present (copies to the GPU then run at
 * full PCIe speed and can overlap compute). On a CPU-only machine the GPU tier's logic runs with
 * device 'cpu' (tests do this).
 */
import { cudaAvailable, Device, type DeviceSpec } from '../runtime/device.js';
import { ArgumentError } from '../runtime/errors.js';
import { Tensor } from '../runtime/tensor.js';
import { checkEntry, deserializeEntry, disposeEntry, entryInfo, layerCount, type Entry, type EntryInfo } from './entry.js';
import { StorageFullError } from './errors.js';
import { ByteLru } from './lru.js';
import { TierCounters, type EntryHandle, type Tier, type TierKind, type TierStats } from './tier.js';

export interface MemoryTierOptions {
  /** Byte budget of resident entries. */
  budgetBytes: number;
  /** 'gpu' (default device cuda:0) or 'cpu' (host). */
  kind: 'gpu' | 'cpu';
  /** Where entries live; the GPU tier may be given 'cpu' to exercise its logic without a GPU. */
  device?: DeviceSpec;
  /** CPU tier: page-locked host memory (default: when CUDA is available). */
  pinned?: boolean;
  name?: string;
  /**
   * Called for each entry pushed out by the LRU, before its memory is freed (the entry's tensors are
   * valid only during the call): the store's write-back demotes dirty entries here.
   */
  onEvict?: (key: string, entry: Entry) => void;
}

/** An entry as the tier holds it; freed when dropped from the index and no handle reads it. */
class Resident {
  refs = 0;
  dropped = false;
  constructor(readonly info: EntryInfo, readonly data: Tensor) {}

  asEntry(): Entry {
    const i = this.info;
    if (i.kind === 'raw') return { kind: 'raw', kv: this.data, positions: Int32Array.from(i.positions!), fingerprint: i.fingerprint! };
    return { kind: 'bitstream', bytes: this.data.toBytes(), codec: i.codec!, level: i.level! };
  }

  drop(): void {
    this.dropped = true;
    if (this.refs === 0) this.data.dispose();
  }

  unref(): void {
    this.refs--;
    if (this.refs === 0 && this.dropped) this.data.dispose();
  }
}

export class MemoryTier implements Tier {
  readonly name: string;
  readonly kind: TierKind;
  readonly remote = false;
  readonly device: Device;
  readonly pinned: boolean;
  private readonly lru: ByteLru<Resident>;
  private readonly counters = new TierCounters();
  onEvict: ((key: string, entry: Entry) => void) | undefined;

  constructor(options: MemoryTierOptions) {
    if (!(Number.isSafeInteger(options.budgetBytes) && options.budgetBytes >= 0))
      throw new ArgumentError(`Expected budgetBytes to be an integer >= 0 but received ${options.budgetBytes}`);
    if (options.kind !== 'gpu' && options.kind !== 'cpu') throw new ArgumentError(`Expected kind 'gpu' or 'cpu' but received ${JSON.stringify(options.kind)}`);
    this.kind = options.kind;
    this.name = options.name ?? options.kind;
    this.device = Device.parse(options.device ?? (options.kind === 'gpu' ? 'cuda:0' : 'cpu'));
    if (options.kind === 'cpu' && this.device.isCuda) throw new ArgumentError('the CPU tier lives in host memory; give device cpu');
    this.pinned = !this.device.isCuda && (options.pinned ?? (options.kind === 'cpu' && cudaAvailable()));
    this.lru = new ByteLru(options.budgetBytes);
    this.onEvict = options.onEvict;
  }

  async put(key: string, entry: Entry): Promise<void> {
    checkEntry(entry);
    const info = entryInfo(entry);
    this.makeRoom(key, info.payloadBytes);
    const data = entry.kind === 'raw'
      ? entry.kv.to(this.device, { pinned: this.pinned })
      : Tensor.fromBytes(entry.bytes, [entry.bytes.byteLength], { dtype: 'u8', device: this.device, pinned: this.pinned });
    this.insert(key, new Resident(info, data));
  }

  async putSerialized(key: string, bytes: Uint8Array): Promise<void> {
    const e = deserializeEntry(bytes, 'cpu', `entry ${key}`);
    try {
      await this.put(key, e);
    } finally {
      disposeEntry(e);
    }
  }

  async open(key: string): Promise<EntryHandle | undefined> {
    const r = this.lru.use(key);
    if (!r) {
      this.counters.misses++;
      return undefined;
    }
    this.counters.hits++;
    r.refs++;
    let released = false;
    const pinned = this.pinned;
    return {
      info: r.info,
      async layer(l: number, device: DeviceSpec): Promise<Tensor> {
        if (r.info.kind !== 'raw') throw new ArgumentError(`entry ${key} is a bitstream; decode it to read layers`);
        const L = layerCount(r.info);
        if (!Number.isInteger(l) || l < 0 || l >= L) throw new ArgumentError(`layer ${l} out of range [0, ${L})`);
        const [, , n = 0, h = 0, d = 0] = r.info.shape!;
        const view = r.data.view([2, n, h, d], l * 2 * n * h * d);
        try {
          return view.to(device);
        } finally {
          view.dispose();
        }
      },
      async entry(device: DeviceSpec): Promise<Entry> {
        const i = r.info;
        if (i.kind === 'bitstream') return { kind: 'bitstream', bytes: r.data.toBytes(), codec: i.codec!, level: i.level! };
        const d = Device.parse(device);
        return { kind: 'raw', kv: r.data.to(d, { pinned: pinned && !d.isCuda }), positions: Int32Array.from(i.positions!), fingerprint: i.fingerprint! };
      },
      release(): void {
        if (released) return;
        released = true;
        r.unref();
      },
    };
  }

  async has(key: string): Promise<boolean> {
    return this.lru.has(key);
  }

  async delete(key: string): Promise<boolean> {
    const r = this.lru.delete(key);
    r?.drop();
    return r !== undefined;
  }

  stats(): TierStats {
    return { name: this.name, kind: this.kind, entries: this.lru.size, usedBytes: this.lru.usedBytes, budgetBytes: this.lru.budgetBytes, ...this.counters };
  }

  async close(): Promise<void> {
    for (const k of this.lru.keys()) this.lru.delete(k)?.drop();
  }

  /** Evicts LRU entries until `bytes` fit; an entry larger than the whole budget is refused. */
  private makeRoom(key: string, bytes: number): void {
    if (bytes > this.lru.budgetBytes)
      throw new StorageFullError(`${this.name} tier: an entry of ${bytes} bytes exceeds the budget of ${this.lru.budgetBytes}`);
    const old = this.lru.delete(key);
    old?.drop();
    for (const [k, r] of this.lru.evictFor(bytes)) {
      this.counters.evictions++;
      if (this.onEvict) this.onEvict(k, r.asEntry());
      r.drop();
    }
  }

  private insert(key: string, r: Resident): void {
    // A concurrent put of the same key may have landed meanwhile: the last insert wins, whole.
    this.lru.set(key, r, r.info.payloadBytes)?.drop();
  }
}
