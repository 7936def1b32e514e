/**
 * A first-in first-out queue on an array and a head index: O(1) each way,
 * with taken slots cleared (so their items can be collected) and the array
 * compacted once most of it is behind the head.
 */
export class Fifo<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  /** The item pushed last (still queued), if any. */
  last(): T | undefined {
    return this.size > 0 ? this.items[this.items.length - 1] : undefined;
  }

  shift(): T | undefined {
    if (this.head === this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Calls `f` with each queued item, oldest first. */
  forEach(f: (item: T) => void): void {
    for (let i = this.head; i < this.items.length; i++) f(this.items[i] as T);
  }

  /** Takes everything still queued, in order. */
  drain(): T[] {
    const out = this.items.slice(this.head) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }
}
