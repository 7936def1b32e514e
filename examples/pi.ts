/**
 * Example task module: a Monte Carlo estimate of pi. Workers import this file
 * by reference (module + export name), TypeScript and all.
 */

/** A small seeded PRNG (mulberry32), so every run of a task gives the same numbers. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Throws `n` darts at the unit square; returns how many land inside the quarter circle. */
export function sample(seed: number, n: number): number {
  const next = rng(seed);
  let inside = 0;
  for (let i = 0; i < n; i++) {
    const x = next();
    const y = next();
    if (x * x + y * y <= 1) inside++;
  }
  return inside;
}

export function add(a: number, b: number): number {
  return a + b;
}

export function estimate(inside: number, total: number): number {
  return (4 * inside) / total;
}
