import { describe, expect, it } from 'vitest';
import { Fifo } from '../src/util/fifo.ts';
import { Heap } from '../src/util/heap.ts';

/** A deterministic pseudo-random sequence, so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('Heap (FIFO run + binary heap)', () => {
  it('pops in order for in-order, reverse and random pushes, interleaved with pops', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      const h = new Heap<number>((a, b) => a < b);
      const ref: number[] = [];
      let next = 0;
      for (let step = 0; step < 5000; step++) {
        const r = rand();
        if (r < 0.4) {
          // Mostly increasing pushes (the FIFO path), some out of order (the heap path).
          const v = rand() < 0.8 ? next++ : Math.floor(rand() * next);
          h.push(v);
          ref.push(v);
        } else if (r < 0.6 && ref.length > 0) {
          ref.sort((a, b) => a - b);
          expect(h.peek()).toBe(ref[0]);
          expect(h.pop()).toBe(ref.shift());
        }
        expect(h.size).toBe(ref.length);
      }
      ref.sort((a, b) => a - b);
      const drained: number[] = [];
      while (h.size > 0) drained.push(h.pop() as number);
      expect(drained).toEqual(ref);
      expect(h.pop()).toBeUndefined();
    }
  });
});

describe('Fifo', () => {
  it('keeps order across chunks, emptied and filled again, and drains what is left', () => {
    for (const seed of [1, 2, 3]) {
      const rand = rng(seed);
      const q = new Fifo<number>();
      const ref: number[] = [];
      const wrong: string[] = [];
      let next = 0;
      for (let step = 0; step < 60_000; step++) {
        // Phases that grow the queue past several chunks of 4,096, then empty it.
        const growing = Math.floor(step / 15_000) % 2 === 0;
        if (rand() < (growing ? 0.8 : 0.25)) {
          q.push(next);
          ref.push(next++);
        } else {
          const peeked = q.peek();
          const want = ref.shift();
          if (peeked !== want || q.shift() !== want) wrong.push(`step ${step}: took ${peeked}, expected ${want}`);
        }
        if (q.size !== ref.length || q.last() !== ref.at(-1)) wrong.push(`step ${step}: size ${q.size} last ${q.last()}, expected ${ref.length} ${ref.at(-1)}`);
      }
      expect(wrong.slice(0, 3)).toEqual([]);
      const seen: number[] = [];
      q.forEach((x) => seen.push(x));
      expect(seen).toEqual(ref);
      expect(q.drain()).toEqual(ref);
      expect(q.size).toBe(0);
      expect(q.shift()).toBeUndefined();
      expect(q.peek()).toBeUndefined();
      expect(q.last()).toBeUndefined();
    }
  });
});
