/** Items per chunk of a Fifo. */
const CHUNK = 4096;

/**
 * A first-in first-out queue in chunks of CHUNK items: O(1) each way, taken
 * slots cleared (so their items can be collected), and a chunk dropped once
 * all of it is taken. Chunks, not one array: the scheduler's queue of a
 * million ready tasks was one array of 8 MB, copied as it grew and again when
 * compacted, which raised the scheduler's peak memory.
 */
export class Fifo<T> {
  /** Every chunk is full but the last; the first is taken from at `head`. */
  private chunks: (T | undefined)[][] = [];
  private head = 0;
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    const last = this.chunks[this.chunks.length - 1];
    if (last && last.length < CHUNK) last.push(item);
    else this.chunks.push([item]);
    this.count++;
  }

  peek(): T | undefined {
    return this.count > 0 ? this.chunks[0]?.[this.head] : undefined;
  }

  /** The item pushed last (still queued), if any. */
  last(): T | undefined {
    if (this.count === 0) return undefined;
    const chunk = this.chunks[this.chunks.length - 1] as (T | undefined)[];
    return chunk[chunk.length - 1];
  }

  /** The item `i` places from the oldest (0: the oldest), if there is one. */
  at(i: number): T | undefined {
    if (i < 0 || i >= this.count) return undefined;
    const j = this.head + i;
    return this.chunks[Math.floor(j / CHUNK)]?.[j % CHUNK];
  }

  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const first = this.chunks[0] as (T | undefined)[];
    const item = first[this.head];
    first[this.head++] = undefined;
    this.count--;
    if (this.head === first.length) {
      this.chunks.shift();
      this.head = 0;
    }
    return item;
  }

  /** Calls `f` with each queued item, oldest first. */
  forEach(f: (item: T) => void): void {
    for (let c = 0; c < this.chunks.length; c++) {
      const chunk = this.chunks[c] as (T | undefined)[];
      for (let i = c === 0 ? this.head : 0; i < chunk.length; i++) f(chunk[i] as T);
    }
  }

  /** Takes everything still queued, in order. */
  drain(): T[] {
    const out: T[] = [];
    this.forEach((item) => out.push(item));
    this.chunks = [];
    this.head = 0;
    this.count = 0;
    return out;
  }
}
