/**
 * A Map from string keys split over several Maps by a cheap hash of the key.
 *
 * Why: a JS Map doubles its table when it fills, copying every entry in one
 * synchronous step. The scheduler's table of two million tasks grew from one
 * million entries to two in a single `set` that took about 300 ms, the
 * longest stall left while taking in a large graph. Split 16 ways, each
 * growth copies a sixteenth of that.
 */
const SHARDS = 16;

/** Shard of a key: its length and last two characters (keys often differ only in a numeric or hex suffix). */
function shardOf(key: string): number {
  const n = key.length;
  if (n === 0) return 0;
  return (key.charCodeAt(n - 1) * 31 + (n > 1 ? key.charCodeAt(n - 2) : 0) + n) & (SHARDS - 1);
}

export class ShardedMap<V> implements ReadonlyMap<string, V> {
  private readonly shards: Map<string, V>[] = Array.from({ length: SHARDS }, () => new Map<string, V>());
  private count = 0;

  get size(): number {
    return this.count;
  }

  clear(): void {
    for (const m of this.shards) m.clear();
    this.count = 0;
  }

  get(key: string): V | undefined {
    return (this.shards[shardOf(key)] as Map<string, V>).get(key);
  }

  has(key: string): boolean {
    return (this.shards[shardOf(key)] as Map<string, V>).has(key);
  }

  set(key: string, value: V): this {
    const m = this.shards[shardOf(key)] as Map<string, V>;
    const before = m.size;
    m.set(key, value);
    this.count += m.size - before;
    return this;
  }

  delete(key: string): boolean {
    const deleted = (this.shards[shardOf(key)] as Map<string, V>).delete(key);
    if (deleted) this.count--;
    return deleted;
  }

  *entries(): MapIterator<[string, V]> {
    for (const m of this.shards) yield* m.entries();
  }

  *keys(): MapIterator<string> {
    for (const m of this.shards) yield* m.keys();
  }

  *values(): MapIterator<V> {
    for (const m of this.shards) yield* m.values();
  }

  [Symbol.iterator](): MapIterator<[string, V]> {
    return this.entries();
  }

  forEach(fn: (value: V, key: string, map: ReadonlyMap<string, V>) => void): void {
    for (const m of this.shards) for (const [k, v] of m) fn(v, k, this);
  }
}
