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
  it('keeps order across compactions and drains what is left', () => {
    const q = new Fifo<number>();
    const ref: number[] = [];
    for (let i = 0; i < 5000; i++) {
      q.push(i);
      ref.push(i);
      if (i % 3 !== 0) {
        expect(q.peek()).toBe(ref[0]);
        expect(q.shift()).toBe(ref.shift());
      }
      expect(q.size).toBe(ref.length);
      expect(q.last()).toBe(ref.at(-1));
    }
    expect(q.drain()).toEqual(ref);
    expect(q.size).toBe(0);
    expect(q.shift()).toBeUndefined();
    expect(q.last()).toBeUndefined();
  });
});
