/**
 * An LRU index with a byte budget: a Map keeps insertion order, and a use re-inserts the key, so the
 * first key is always the least recently used. Pinned keys (being read) are skipped by eviction.
 */
export class ByteLru<V> {
  private readonly items = new Map<string, { value: V; bytes: number; pins: number }>();
  private used = 0;

  constructor(readonly budgetBytes: number) {}

  get size(): number {
    return this.items.size;
  }

  get usedBytes(): number {
    return this.used;
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  /** The value, marked as just used. */
  use(key: string): V | undefined {
    const it = this.items.get(key);
    if (!it) return undefined;
    this.items.delete(key);
    this.items.set(key, it);
    return it.value;
  }

  peek(key: string): V | undefined {
    return this.items.get(key)?.value;
  }

  /** Inserts or replaces; returns the replaced value (not counted as evicted). */
  set(key: string, value: V, bytes: number): V | undefined {
    const old = this.items.get(key);
    if (old) {
      this.items.delete(key);
      this.used -= old.bytes;
    }
    this.items.set(key, { value, bytes, pins: old?.pins ?? 0 });
    this.used += bytes;
    return old?.value;
  }

  delete(key: string): V | undefined {
    const it = this.items.get(key);
    if (!it) return undefined;
    this.items.delete(key);
    this.used -= it.bytes;
    return it.value;
  }

  pin(key: string): void {
    const it = this.items.get(key);
    if (it) it.pins++;
  }

  unpin(key: string): void {
    const it = this.items.get(key);
    if (it && it.pins > 0) it.pins--;
  }

  isPinned(key: string): boolean {
    return (this.items.get(key)?.pins ?? 0) > 0;
  }

  /** Removes least recently used, unpinned keys until used <= budget - `room`; returns them. */
  evictFor(room: number, keep?: string): [string, V][] {
    const out: [string, V][] = [];
    for (const [k, it] of this.items) {
      if (this.used + room <= this.budgetBytes) break;
      if (it.pins > 0 || k === keep) continue;
      this.items.delete(k);
      this.used -= it.bytes;
      out.push([k, it.value]);
    }
    return out;
  }

  keys(): string[] {
    return [...this.items.keys()];
  }
}
