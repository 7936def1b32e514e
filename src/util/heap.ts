/**
 * A priority queue ordered by `before(a, b)` (true when a comes first).
 *
 * Items pushed in order (each no earlier than the last one appended) go to a
 * FIFO run at O(1) each way; only out-of-order pushes pay for the binary
 * heap. Graphs arrive in order, so a queue of 100,000 root tasks is almost
 * all FIFO.
 */
export class Heap<T> {
  private items: T[] = [];
  private run: T[] = [];
  private runHead = 0;

  constructor(private readonly before: (a: T, b: T) => boolean) {}

  get size(): number {
    return this.items.length + this.run.length - this.runHead;
  }

  peek(): T | undefined {
    const h = this.items[0];
    if (this.runHead === this.run.length) return h;
    const r = this.run[this.runHead] as T;
    return h !== undefined && this.before(h, r) ? h : r;
  }

  push(item: T): void {
    const n = this.run.length;
    if (n === this.runHead || !this.before(item, this.run[n - 1] as T)) {
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
    if (this.runHead < this.run.length) {
      const r = this.run[this.runHead] as T;
      const h = this.items[0];
      if (h === undefined || !this.before(h, r)) return this.shiftRun();
    }
    return this.popHeap();
  }

  private shiftRun(): T {
    const r = this.run[this.runHead] as T;
    this.run[this.runHead++] = undefined as T; // let it be collected
    if (this.runHead === this.run.length) {
      this.run = [];
      this.runHead = 0;
    } else if (this.runHead > 1024 && this.runHead * 2 > this.run.length) {
      this.run = this.run.slice(this.runHead);
      this.runHead = 0;
    }
    return r;
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
