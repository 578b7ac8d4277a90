/** The KV store: chunk keys, tiers (GPU, CPU, disk, Redis), LRU with byte budgets, layer-wise loading. */
export { chunkKey, chunkKeys, DEFAULT_CHUNK_SIZE, type ChunkKey, type KeyMode, type KeyOptions } from './keys.js';
export {
  deserializeEntry, disposeEntry, entryInfo, serializeEntry, type BitstreamEntry, type Entry, type EntryInfo, type RawEntry,
} from './entry.js';
export { CorruptEntryError, StorageFullError, TierUnavailableError } from './errors.js';
export { tierGet, type EntryHandle, type Tier, type TierKind, type TierStats } from './tier.js';
export { MemoryTier, type MemoryTierOptions } from './memory-tier.js';
export { DiskTier, type DiskIO, type DiskTierOptions } from './disk-tier.js';
export { RedisTier, type RedisTierOptions } from './redis-tier.js';
export { KVStore, type KVStoreOptions, type RemoteStatus, type StoreLayerSource, type StoreStatus, type WritePolicy } from './kv-store.js';
