/**
 * A priority queue ordered by `before(a, b)` (true when a comes first).
 *
 * Items pushed in order (each no earlier than the last one appended) go to a
 * FIFO run at O(1) each way; only out-of-order pushes pay for the binary
 * heap. Graphs arrive in order, so a queue of 100,000 root tasks is almost
 * all FIFO.
 */
import { Fifo } from './fifo.ts';

export class Heap<T> {
  private items: T[] = [];
  private run = new Fifo<T>();

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length + this.run.size;
  }

  /** Up to `n` of its items, in no particular order (a sample: adaptive.ts). */
  some(n: number): T[] {
    const out = this.items.slice(0, n);
    for (let i = 0; out.length < n && i < this.run.size; i++) out.push(this.run.at(i) as T);
    return out;
  }

  clear(): void {
    this.items = [];
    this.run = new Fifo<T>();
  }

  peek(): T | undefined {
    const h = this.items[0];
    if (this.run.size === 0) return h;
    const r = this.run.peek() as T;
    return h !== undefined && this.before(h, r) ? h : r;
  }

  push(item: T): void {
    const last = this.run.last();
    if (last === undefined || !this.before(item, last)) {
      this.run.push(item);
      return;
    }
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as T;
      if (!this.before(item, parent)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    if (this.run.size > 0) {
      const r = this.run.peek() as T;
      const h = this.items[0];
      if (h === undefined || !this.before(h, r)) return this.run.shift();
    }
    return this.popHeap();
  }

  private popHeap(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      let i = 0;
      const n = a.length;
      while (true) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && this.before(a[r] as T, a[l] as T)) c = r;
        if (!this.before(a[c] as T, last)) break;
        a[i] = a[c] as T;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
