/**
 * One storage tier (GPU memory, host memory, local disk, Redis) behind one interface, so `KVStore`
 * composes any stack of them. Every tier keeps an LRU order and a byte budget; `get` and `open` count
 * as a use. Entries handed in are copied; entries handed out are the caller's to dispose.
 */
import type { DeviceSpec } from '../runtime/device.js';
import type { Tensor } from '../runtime/tensor.js';
import type { Entry, EntryInfo } from './entry.js';

export type TierKind = 'gpu' | 'cpu' | 'disk' | 'redis';

export interface TierStats {
  readonly name: string;
  readonly kind: TierKind;
  readonly entries: number;
  readonly usedBytes: number;
  readonly budgetBytes: number;
  readonly hits: number;
  readonly misses: number;
  readonly evictions: number;
  /** Entries dropped because a checksum failed or a file was short. */
  readonly corruptDropped: number;
}

/** An entry opened for reading: its header, and its layers or payload read on demand. */
export interface EntryHandle {
  readonly info: EntryInfo;
  /** Raw KV only: layer l as [2, n, kvHeads, headDim] on `device` (a new tensor; verified first). */
  layer(l: number, device: DeviceSpec): Promise<Tensor>;
  /** The whole entry on `device` (raw KV) or as bytes (bitstream); verified first. */
  entry(device: DeviceSpec): Promise<Entry>;
  /** Lets the tier evict or reuse what the handle pinned. Idempotent. */
  release(): void;
}

export interface Tier {
  readonly name: string;
  readonly kind: TierKind;
  /** True for tiers behind a network (their failures make the store degraded, not fail). */
  readonly remote: boolean;
  /** Stores a copy of `entry`; replaces an existing entry of the same key. */
  put(key: string, entry: Entry): Promise<void>;
  /** Stores an entry given in its serialised form (serializeEntry); what write-back and retries use. */
  putSerialized(key: string, bytes: Uint8Array): Promise<void>;
  open(key: string): Promise<EntryHandle | undefined>;
  has(key: string): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  stats(): TierStats;
  /** Remote tiers: one round trip, rejecting while the tier is unreachable. */
  ping?(): Promise<void>;
  /** Memory tiers: called with each entry the LRU pushes out, before it is freed (write-back). */
  onEvict?: ((key: string, entry: Entry) => void) | undefined;
  close(): Promise<void>;
}

/** Reads a whole entry through `open` (a miss is undefined). */
export async function tierGet(tier: Tier, key: string, device: DeviceSpec = 'cpu'): Promise<Entry | undefined> {
  const h = await tier.open(key);
  if (!h) return undefined;
  try {
    return await h.entry(device);
  } finally {
    h.release();
  }
}

/** Mutable counters a tier reports through stats(). */
export class TierCounters {
  hits = 0;
  misses = 0;
  evictions = 0;
  corruptDropped = 0;
}
