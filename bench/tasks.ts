/** Task functions for the graph bench, the same as the Dask peer benchmark's. */

export function inc(x: number): number {
  return x + 1;
}

export function add(a: number, b: number): number {
  return a + b;
}

export function makeBuffer(_i: number): Uint8Array {
  return new Uint8Array(4 * 1024 * 1024);
}

/** The bandwidth workload's values: 16 MiB each. */
export function makeBuffer16(i: number): Uint8Array {
  return new Uint8Array(16 * 1024 * 1024).fill(i % 256);
}

export function touch(buf: Uint8Array): Uint8Array {
  buf[0] = ((buf[0] ?? 0) + 1) % 256;
  return buf;
}
